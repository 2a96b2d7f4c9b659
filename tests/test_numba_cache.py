"""A second process loads the Numba kernels from the on-disk cache instead of compiling."""

import json
import os
import subprocess
import sys

CODE = r"""
import json, time
import numpy as np
import fastgd
from fastgd.backends import numba as nb

rng = np.random.default_rng(0)
start = time.perf_counter()
# float64 only: whether a kernel is cached does not depend on its dtypes, and every compilation in
# a fresh cache costs seconds (both dtypes: 70 s).
for dtype in (np.float64,):
    X = rng.normal(size=(50, 3)).astype(dtype)
    fastgd.loss_grad(X, rng.normal(size=50), np.ones(3), 0.5, loss="mse", backend="numba")
    wide = rng.normal(size=(50, 12)).astype(dtype)  # the block kernel (d = 3 is narrow)
    fastgd.loss_grad(wide, rng.normal(size=50), np.ones(12), 0.5, loss="mse", backend="numba")
    sw = np.ones(50)
    fastgd.loss_grad(X, np.arange(50) % 2, np.ones(3), loss="logistic", sample_weight=sw, backend="numba")
    fastgd.loss_grad(X, np.arange(50) % 3, np.ones((3, 3)), loss="softmax", backend="numba")
    one = rng.normal(size=(50, 1)).astype(dtype)  # d = 1: with AVX-512, _logistic_one_feature_simd
    fastgd.loss_grad(one, np.arange(50) % 2, np.ones(1), loss="logistic", backend="numba")
    fastgd.gd_step(np.ones(3, dtype), np.ones(3), 0.1, l1=0.1, backend="numba")
    fastgd.penalty(np.ones(3, dtype), l1=0.1, backend="numba")
elapsed = time.perf_counter() - start
kernels = [
    nb._scalar_loss_grad, nb._narrow_loss_grad, nb._softmax_loss_grad, nb._logistic_one_feature_simd,
    nb._gd_step, nb._penalty,
]
print(json.dumps({
    "seconds": elapsed,
    "hits": sum(sum(k.stats.cache_hits.values()) for k in kernels),
    "misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
}))
"""


def run(cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_reuses_numba_cache(tmp_path):
    first = run(tmp_path)
    assert first["misses"] > 0, "a fresh cache directory must start empty"
    second = run(tmp_path)
    print(f"first process {first['seconds']:.2f} s, second process {second['seconds']:.3f} s")
    assert second["misses"] == 0, "the second process recompiled a kernel: the Numba cache is not reused"
    assert second["hits"] >= 5  # 5 kernels at least (the d = 1 one takes AVX-512)
