"""Per-task sum rows of the CPU kernels never share a cache line.

Each task adds into its own float64 row while a thread works on it; two rows on one cache
line would send that line back and forth between the cores on every write. The rows are
padded (fastgd.backends._sums.padded_width) so that this holds for any alignment of the
buffer's start.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fastgd.backends import _sums

LINE = _sums.CACHE_LINE_BYTES


def lines_of(start_byte, n_bytes):
    return set(range(start_byte // LINE, (start_byte + n_bytes - 1) // LINE + 1))


@given(
    width=st.integers(1, 5000),
    n_tasks=st.integers(2, 8),
    base=st.integers(0, LINE // 8 - 1).map(lambda v: 8 * v),  # any float64 alignment
)
def test_rows_of_two_tasks_share_no_cache_line(width, n_tasks, base):
    stride = _sums.padded_width(width)
    assert stride >= width
    used = [lines_of(base + c * stride * 8, width * 8) for c in range(n_tasks)]
    for c in range(n_tasks - 1):
        assert not used[c] & used[c + 1]


def test_task_rows_are_zeroed_float64_rows_one_per_task():
    rows = _sums.task_rows(3, 10)
    assert rows.dtype == np.float64 and rows.flags.c_contiguous
    assert rows.shape == (3, _sums.padded_width(10)) and not rows.any()
