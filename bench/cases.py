"""Backend parameters shared by the benchmark modules."""

import pytest

from fastgd import _registry


def real_gpu():
    import numba

    return not numba.config.ENABLE_CUDASIM and _registry.is_available("cuda")


BACKENDS = [
    pytest.param(
        name,
        id=name,
        marks=pytest.mark.skipif(
            not _registry.is_available(name) or (name == "cuda" and not real_gpu()),
            reason="needs a real GPU" if name == "cuda" else "backend unavailable",
        ),
    )
    for name in _registry.BACKENDS
]
