/* Software prefetches: asking for cache lines before the loads that use them (a hint; no
 * effect on results).
 *
 * fgd_prefetch: the lines of [p, p + bytes), into the L2 cache; the softmax gradient
 * tiles ask for their next block with it (see fastgd_tiles.h).
 *
 * fgd_prefetch_stream: for the d = 1 loops of kernels/cython_kernels.pyx (those without
 * AVX-512, and weighted logistic): each part of a row range asks for the same rows
 * FGD_STREAM_AHEAD_BYTES further on. The AVX-512 loops of fastgd_one_feature.c ask for
 * one line a step instead, which reads faster (see there). With few loads in its
 * out-of-order window such a loop leaves few reads in flight, and on the 2-core Intel Xeon
 * test VM (AVX-512, 480 MB L3) the hardware prefetchers did not make up for it: the d = 1
 * float64 logistic loop in a C harness, two threads, 10,000,000 rows (X and y in L3) 22.5
 * -> 6.9 ms, 60,000,000 rows (from memory) 134 -> 45 ms; 2 KB ahead (256 float64 rows)
 * was as good as 4 KB and better than 8 KB. In the kernels (fastgd bench, 10M rows, X in
 * L3), cython / numba: logistic float64 21 -> 6.7-7.1 / 11.8 -> 7.2 ms, float32 5.0 ->
 * 2.9-3.3 / 4.0 -> 3.2 ms; cython mse 4.8 -> 3.9-4.3 ms; numba's mse loop, which asks once
 * per 1 KB part and into L1 (numba.MSE_PART_BYTES), 5.8 -> 4.0-4.4 ms. The narrow-row
 * loops (d = 2 to 8) gained nothing from it, and the d = 64 blocks (2M rows, from memory)
 * lost (0.68 -> 0.58 of the read in a harness): they do without it too. The numba
 * backend's copy is _prefetch_stream.
 */
#ifndef FASTGD_PREFETCH_H
#define FASTGD_PREFETCH_H

#include <stddef.h>

#define FGD_STREAM_AHEAD_BYTES 2048
/* The locality of the prefetches (2: x86 prefetcht1, into L2). The softmax block steps in a
 * C harness, 2M x 64 float64, k = 10: 51.6 ms with 2, 52.2 with 1, 57.0 with 3 (into L1),
 * 136 with 0 (non-temporal). */
#define FGD_PF_LOC 2

static inline void fgd_prefetch(const void *p, ptrdiff_t bytes)
{
    const char *c = (const char *)p;
#if defined(__GNUC__)
    for (ptrdiff_t off = 0; off < bytes; off += 64)
        __builtin_prefetch(c + off, 0, FGD_PF_LOC);
#else
    (void)c;
    (void)bytes;
#endif
}

/* Rows [lo, hi) of an array of rows of row_bytes bytes are about to be read: ask for the
 * rows FGD_STREAM_AHEAD_BYTES further on, those before row end (the array's end). */
static inline void fgd_prefetch_stream(const void *base, ptrdiff_t row_bytes, ptrdiff_t lo, ptrdiff_t hi,
                                       ptrdiff_t end)
{
    ptrdiff_t ahead = (FGD_STREAM_AHEAD_BYTES + row_bytes - 1) / row_bytes;
    ptrdiff_t from = lo + ahead, to = hi + ahead < end ? hi + ahead : end;
    if (from < to)
        fgd_prefetch((const char *)base + from * row_bytes, (to - from) * row_bytes);
}

#endif
