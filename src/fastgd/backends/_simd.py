"""LLVM vector code for the Numba softmax kernel's block products and steps.

Numba's own loops over a block's products are tiles of four rows by four classes whose
sums run along the row (LLVM vectorises the loop over d): each tile ends with sixteen sums
across a vector's lanes, which at d = 64 cost about as much as its multiply-adds, and
scalar code for the other shapes (eight classes a vector, the rows' values broadcast; the
gradient's sums held in registers over a block's rows) was not vectorised by LLVM. These
intrinsics write those loops as LLVM vector code, the same steps as the Cython kernel's C
(kernels/fastgd_score_groups.h, the gradient panels of kernels/fastgd_tiles_impl.h):

- :func:`score_group_tile` -- the scores of a tile of eight rows for a group of eight
  classes (one vector of eight float64 lanes, or of eight float32 classes by two columns),
  with optionally one more class by dot products along the rows;
- :func:`score_rows_tile` -- the float32 scores of a tile of sixteen rows in the lanes, its
  columns transposed in registers (kernels/fastgd_score_rows.h), on AMD Zen CPUs
  (numba.SCORE_ROWS);
- :func:`panel_rows` -- a panel of the gradient update: Q classes by J vectors of columns,
  summed in registers over a block's rows;
- :func:`softmax_steps` -- a block's softmax steps, from scores to residuals, eight float64
  or sixteen float32 rows a vector, two vectors a step (kernels/fastgd_softmax_steps.h);
- :func:`logistic_one_feature` -- unweighted logistic for d = 1, eight float64 or sixteen
  float32 rows a vector (kernels/fastgd_one_feature.c). Its range reduction is AVX-512DQ's
  vrange and vreduce and its 2**k AVX-512's vscalef, x86 intrinsics: it is compiled only
  where the CPU has both (numba.ONE_FEATURE_SIMD); the others are plain LLVM vector code
  that compiles for any CPU;
- :func:`mse_one_feature` -- mse for d = 1, weighted or not, a 64-byte line of x a step.
- :func:`fused_rows_part` -- unweighted mse and logistic on rows of two to sixteen 512-bit
  vectors, four rows a step (kernels/fastgd_fused_rows.c), where the CPU has AVX-512
  (numba.FUSED_SIMD).

Where the CPU has AVX-512 these took 2M x 64, k = 10 from 95 to 56-58 ms in float64 and 54
to 30-39 ms in float32 (README, Performance).

The multiply-adds are ``llvm.fma``; the loops over columns and rows are LLVM loops whose
sums live in stack slots that LLVM turns into registers. Nothing here reads outside the
arrays: a tile's missing rows read its first row, and partial vectors are masked.

Numba's on-disk cache of the kernels in numba.py does not notice a change to this file
(its index follows numba.py alone): after editing here, delete the cache
(``src/fastgd/backends/__pycache__/*.nbi`` and ``*.nbc``), or the old code keeps running.
"""

import numba
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._vecmath import (
    _PAIR_CONSTANTS,
    EXP2_FLOOR_POLY_F32,
    EXP_MIN,
    EXP_MIN_F32,
    INV_LN2_F32,
    PADE_EVEN,
    PADE_EXP2_EVEN,
    PADE_EXP2_ODD,
    PADE_ODD,
)

#: The residuals' stride the gradient panels have a fast case for: the softmax block's rows
#: (fastgd._config.CPU_SOFTMAX_BLOCK_ROWS; a test checks that the two agree).
PANEL_LDR = 384
#: The most classes a pass of score_rows_tile takes (FGD_SCORE_ROWS_CLASSES in
#: kernels/fastgd_score_rows.h).
SCORE_ROWS_CLASSES = 10
#: The most classes a gradient panel takes (as FGD_PANEL_CLASSES_MAX in
#: kernels/fastgd_tiles.h): more classes are split into groups of at most this many.
PANEL_CLASSES_MAX = 12
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_I1 = ir.IntType(1)


def _vec(ft, n):
    return ir.VectorType(ft, n)


def _mangle(t):
    """LLVM's intrinsic name suffix for a vector type or a pointer to one."""
    if isinstance(t, ir.PointerType):
        return "p0" + _mangle(t.pointee)
    element = {ir.DoubleType: "f64", ir.FloatType: "f32"}.get(type(t.element))
    return f"v{t.count}{element or f'i{t.element.width}'}"


def _intrinsic(builder, name, fnty, *types_):
    return cgutils.get_or_insert_function(
        builder.module, fnty, ".".join([name] + [_mangle(t) for t in types_])
    )


def _fma(builder, a, b, c):
    fn = _intrinsic(builder, "llvm.fma", ir.FunctionType(a.type, [a.type] * 3), a.type)
    return builder.call(fn, [a, b, c])


def _horner(builder, coefs, r):
    """The polynomial with coefficients coefs (LLVM values, highest degree first) at r, by
    Horner's scheme: one multiply-add a degree."""
    p = coefs[0]
    for c in coefs[1:]:
        p = _fma(builder, p, r, c)
    return p


def _splat(builder, x, vt):
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, _I32(0))
    return builder.shuffle_vector(
        v, ir.Constant(vt, ir.Undefined), ir.Constant(_vec(_I32, vt.count), [0] * vt.count)
    )


def _align(vt):
    """The alignment of vt's elements (loads and stores here are element-aligned)."""
    return 4 if isinstance(vt.element, ir.FloatType) else 8


def _load_vec(builder, ptr, vt):
    """An unaligned vector load of vt from an element pointer."""
    return builder.load(builder.bitcast(ptr, vt.as_pointer()), align=_align(vt))


def _masked_store(builder, value, ptr, mask):
    vt = value.type
    pt = vt.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [vt, pt, _I32, mask.type])
    fn = _intrinsic(builder, "llvm.masked.store", fnty, vt, pt)
    builder.call(fn, [value, builder.bitcast(ptr, pt), _I32(_align(vt)), mask])


def _masked_load(builder, ptr, mask, vt):
    pt = vt.as_pointer()
    fnty = ir.FunctionType(vt, [pt, _I32, mask.type, vt])
    fn = _intrinsic(builder, "llvm.masked.load", fnty, vt, pt)
    return builder.call(fn, [builder.bitcast(ptr, pt), _I32(_align(vt)), mask, ir.Constant(vt, None)])


def _lane_mask(builder, count, n, lane_bits=64):
    """<n x i1>: lane l < count. lane_bits=32 compares in 32-bit lanes (count clamped to
    [0, n] first): one compare of sixteen lanes, where 64-bit lanes take two halves, which
    LLVM joined again (kunpckbw, a shuffle-port operation) at every use inside a loop."""
    if lane_bits == 32:
        count = builder.select(builder.icmp_signed("<", count, _I64(0)), _I64(0), count)
        count = builder.select(builder.icmp_signed(">", count, _I64(n)), _I64(n), count)
        count = builder.trunc(count, _I32)
    it = _I32 if lane_bits == 32 else _I64
    lanes = ir.Constant(_vec(it, n), list(range(n)))
    return builder.icmp_signed("<", lanes, _splat(builder, count, _vec(it, n)))


def _shuffle(builder, a, b, idx):
    idx = list(idx)
    return builder.shuffle_vector(a, b, ir.Constant(_vec(_I32, len(idx)), idx))


def _transpose8(builder, r):
    """Columns of the 8 x 8 matrix with rows r[0..7] (vectors of 8 lanes)."""
    lo, hi = [0, 8, 2, 10, 4, 12, 6, 14], [1, 9, 3, 11, 5, 13, 7, 15]
    t = []
    for i in range(0, 8, 2):
        t += [_shuffle(builder, r[i], r[i + 1], lo), _shuffle(builder, r[i], r[i + 1], hi)]
    even, odd = [0, 1, 4, 5, 8, 9, 12, 13], [2, 3, 6, 7, 10, 11, 14, 15]
    u = [None] * 8
    for base in (0, 4):
        t0, t1, t2, t3 = t[base : base + 4]
        u[base + 0] = _shuffle(builder, t0, t2, even)
        u[base + 1] = _shuffle(builder, t0, t2, odd)
        u[base + 2] = _shuffle(builder, t1, t3, even)
        u[base + 3] = _shuffle(builder, t1, t3, odd)
    o = [None] * 8
    o[0], o[4] = _shuffle(builder, u[0], u[4], even), _shuffle(builder, u[0], u[4], odd)
    o[1], o[5] = _shuffle(builder, u[2], u[6], even), _shuffle(builder, u[2], u[6], odd)
    o[2], o[6] = _shuffle(builder, u[1], u[5], even), _shuffle(builder, u[1], u[5], odd)
    o[3], o[7] = _shuffle(builder, u[3], u[7], even), _shuffle(builder, u[3], u[7], odd)
    return o


def _lane128(parts):
    """Element indices of the 128-bit lanes parts (lane l of a shuffle's 2 x 4 lanes)."""
    return [4 * lane + e for lane in parts for e in range(4)]


def _store_pair_scores(builder, az, B, Z, ldz, c0, nq, i0, rows):
    """The float32 group tile's scores into Z: az[r] holds row r's eight classes by two
    columns (lanes 2 c, 2 c + 1), as in fgd_score_group_tile_f of
    kernels/fastgd_score_groups.h. Each class's two sums are added for two rows at a time
    (P[h], rows 2 h and 2 h + 1: classes 2 L and 2 L + 1 in 128-bit lane L), the 128-bit
    lanes transposed (classes 2 L, 2 L + 1 of all eight rows in one vector) and split, and
    stored with the bias: class 2 L from the vector's first eight lanes, class 2 L + 1 from
    its last eight (a masked store eight elements before its row: with ldz < 8 that address
    lies before Z, but the masked-off lanes are never touched, and the GEP is not inbounds)."""
    ft = ir.FloatType()
    vt = _vec(ft, 16)
    even = [4 * L + e for L in range(4) for e in (0, 2, 16, 18)]
    odd = [4 * L + e for L in range(4) for e in (1, 3, 17, 19)]
    P = [
        builder.fadd(
            _shuffle(builder, az[2 * h], az[2 * h + 1], even),
            _shuffle(builder, az[2 * h], az[2 * h + 1], odd),
        )
        for h in range(4)
    ]
    t0, t1 = (
        _shuffle(builder, P[0], P[1], _lane128((0, 1, 4, 5))),
        _shuffle(builder, P[0], P[1], _lane128((2, 3, 6, 7))),
    )
    t2, t3 = (
        _shuffle(builder, P[2], P[3], _lane128((0, 1, 4, 5))),
        _shuffle(builder, P[2], P[3], _lane128((2, 3, 6, 7))),
    )
    # Q[L] = lane L of P[0..3]; then classes 2 L (its even elements), 2 L + 1 (odd) apart
    split = [2 * i for i in range(8)] + [2 * i + 1 for i in range(8)]
    Q = []
    for lo, hi in ((t0, t2), (t1, t3)):
        for first in (0, 1):
            lanes = _lane128((first, first + 2, 4 + first, 4 + first + 2))
            Q.append(_shuffle(builder, lo, hi, [lanes[i] for i in split]))
    lanes = ir.Constant(_vec(_I64, 16), [i % 8 for i in range(16)])
    high = ir.Constant(_vec(ir.IntType(1), 16), [0] * 8 + [1] * 8)
    live = builder.icmp_signed("<", lanes, _splat(builder, rows, _vec(_I64, 16)))
    for L in range(4):
        c = 2 * L
        with builder.if_then(builder.icmp_signed("<", _I64(c), nq)):
            q = builder.add(c0, _I64(c))
            has_next = builder.icmp_signed("<", _I64(c + 1), nq)
            b0 = builder.fptrunc(builder.load(builder.gep(B, [q])), ft)
            q1 = builder.select(has_next, builder.add(q, _I64(1)), q)
            b1 = builder.fptrunc(builder.load(builder.gep(B, [q1])), ft)
            bias = builder.select(high, _splat(builder, b1, vt), _splat(builder, b0, vt))
            v = builder.fadd(Q[L], bias)
            row0 = builder.gep(Z, [builder.add(builder.mul(q, ldz), i0)])
            _masked_store(builder, v, row0, builder.and_(live, builder.not_(high)))
            with builder.if_then(has_next):
                row1 = builder.gep(Z, [builder.sub(builder.add(builder.mul(q1, ldz), i0), _I64(8))])
                _masked_store(builder, v, row1, builder.and_(live, high))


def _lane_sums8_f32(builder, a):
    """Eight lanes, lane r the sum of a[r]'s sixteen float32 lanes: rows paired by 256-bit
    halves, then by 128-bit lanes, then within lanes (as fgd_lane_sums8_f)."""
    S = [
        builder.fadd(
            _shuffle(builder, a[2 * h], a[2 * h + 1], _lane128((0, 1, 4, 5))),
            _shuffle(builder, a[2 * h], a[2 * h + 1], _lane128((2, 3, 6, 7))),
        )
        for h in range(4)
    ]  # S[h]: 128-bit lanes 0, 1 row 2 h's halves summed, lanes 2, 3 row 2 h + 1's
    T = [
        builder.fadd(
            _shuffle(builder, S[2 * g], S[2 * g + 1], _lane128((0, 2, 4, 6))),
            _shuffle(builder, S[2 * g], S[2 * g + 1], _lane128((1, 3, 5, 7))),
        )
        for g in range(2)
    ]  # T[g]: 128-bit lane l, row 4 g + l's four partial sums
    lo = [4 * L + e for L in range(4) for e in (0, 1, 16, 17)]
    hi = [4 * L + e for L in range(4) for e in (2, 3, 18, 19)]
    V = builder.fadd(_shuffle(builder, T[0], T[1], lo), _shuffle(builder, T[0], T[1], hi))
    V = builder.fadd(V, _shuffle(builder, V, V, [i ^ 1 for i in range(16)]))
    # lane L: row L at element 4 L, row 4 + L at 4 L + 2
    return _shuffle(builder, V, V, [0, 4, 8, 12, 2, 6, 10, 14])


def _lane_sums8(builder, a):
    """A vector whose lane r is the sum of a[r]'s lanes (eight vectors of eight lanes)."""
    o = _transpose8(builder, a)
    s = o[0]
    for v in o[1:]:
        s = builder.fadd(s, v)
    return s


def _fold_lanes(builder, v, op=None):
    """v's lanes combined by op (default fadd; e.g. builder.fmul), by halves: log2(lanes)
    dependent steps (a power-of-two lane count)."""
    op = op or builder.fadd
    n = v.type.count
    while n > 1:
        n //= 2
        v = op(_shuffle(builder, v, v, range(n)), _shuffle(builder, v, v, range(n, 2 * n)))
    return builder.extract_element(v, _I32(0))


def _indices_as_intp(context, builder, sig, args):
    """The arguments, integers cast to intp (the code below computes in 64-bit integers)."""
    cast = context.cast
    pairs = zip(args, sig.args, strict=True)
    return [cast(builder, v, t, types.intp) if isinstance(t, types.Integer) else v for v, t in pairs]


def _array(context, builder, ty, value):
    a = context.make_array(ty)(context, builder, value)
    return a.data, cgutils.unpack_tuple(builder, a.shape)


def prefetch_line(builder, ptr, locality=2):
    """LLVM's prefetch of the cache line holding *ptr (read, data; locality 2: x86
    ``prefetcht1``, into L2), also used by the numba backend's _prefetch intrinsics."""
    i8p = ir.IntType(8).as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32])
    fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty=fnty)
    builder.call(fn, [builder.bitcast(ptr, i8p), _I32(0), _I32(locality), _I32(1)])


def _score_group_tile_codegen(context, builder, sig, args):
    (x_ty, _, _, w_ty, _, wdot_ty, dot_ty, group_ty, z_ty, _, _, _, b_ty, _, _) = sig.args
    args = _indices_as_intp(context, builder, sig, args)
    (x_arr, r0, rows, w_arr, c0, wdot_arr, _, _, z_arr, i0, nq, qd, b_arr, pf_at, pf_n) = args
    f32 = x_ty.dtype == types.float32
    ft = ir.FloatType() if f32 else ir.DoubleType()
    nl = 16 if f32 else 8  # lanes of a vector
    vt = _vec(ft, nl)
    zero = ir.Constant(vt, None)
    dot = len(dot_ty) > 0
    group = len(group_ty) > 0
    X, (_, d) = _array(context, builder, x_ty, x_arr)
    W, _ = _array(context, builder, w_ty, w_arr)
    wdot, _ = _array(context, builder, wdot_ty, wdot_arr)
    Z, (_, ldz) = _array(context, builder, z_ty, z_arr)
    B, _ = _array(context, builder, b_ty, b_arr)
    per_line = _I64(64 // (4 if f32 else 8))
    rowp = []
    for r in range(8):
        row = builder.select(builder.icmp_signed("<", _I64(r), rows), builder.add(r0, _I64(r)), r0)
        rowp.append(builder.gep(X, [builder.mul(row, d)]))
    acc = [cgutils.alloca_once_value(builder, zero) for _ in range(8)]
    dacc = [cgutils.alloca_once_value(builder, zero) for _ in range(8)] if dot else []
    step = nl  # columns per block: 8 (float64) or 8 pairs (float32)
    blocks = builder.sdiv(d, _I64(step))
    pairs_t = _vec(_I64, 8)

    def broadcast(ptr_elem, j):
        """A row's value at column j (float64), or its pair at columns j, j + 1 (float32)."""
        if not f32:
            return _splat(builder, builder.load(builder.gep(ptr_elem, [j])), vt)
        p = builder.bitcast(builder.gep(ptr_elem, [j]), _I64.as_pointer())
        return builder.bitcast(_splat(builder, builder.load(p, align=4), pairs_t), vt)

    # the group's first row of Wg: its columns (float64) or column pairs (float32) from
    # there, nl values (64 bytes) a row
    per_group = builder.sdiv(builder.add(d, _I64(1)), _I64(2)) if f32 else d
    w_group = builder.gep(W, [builder.mul(builder.mul(builder.sdiv(c0, _I64(8)), per_group), _I64(nl))])

    def w_vector(col):  # the group's coefficients at column (float64) or pair (float32) col
        return _load_vec(builder, builder.gep(w_group, [builder.mul(col, _I64(nl))]), vt)

    # The rows' pointers at the step's first column, each advanced by a step's bytes at the
    # end of the step, so that the multiply-adds read the rows' values at a pointer and a
    # displacement. With the column as an index added to eight fixed pointers (LLVM's
    # choice), every multiply-add had an indexed memory operand, which Intel cores split
    # into two operations (no micro-fusion of three-operand instructions with an index):
    # float64 scores, 64 columns, nine classes, blocks in L2, one thread, variants in one
    # process on the Intel Xeon VM, median time ratios 0.854-0.887 (float32, whose
    # broadcasts are loads of their own: 0.986).
    rowj = [cgutils.alloca_once_value(builder, p) for p in rowp]
    step_bytes = step * (4 if f32 else 8)  # 64
    with cgutils.for_range(builder, blocks) as loop:
        j = builder.mul(loop.index, _I64(step))
        col0 = builder.sdiv(j, _I64(2)) if f32 else j
        wv = [w_vector(builder.add(col0, _I64(t))) for t in range(8)] if group else []
        here = [builder.load(p) for p in rowj]
        wd = _load_vec(builder, builder.gep(wdot, [j]), vt) if dot else None
        # this step's lines to ask for (one a row while pf_n lasts): one test for the
        # step's eight, the loop only where some are left
        step_pf = builder.mul(loop.index, _I64(8))
        with builder.if_then(builder.icmp_signed("<", step_pf, pf_n), likely=False):
            first = builder.gep(X, [builder.add(pf_at, builder.mul(step_pf, per_line))])
            count = builder.sub(pf_n, step_pf)
            count = builder.select(builder.icmp_signed("<", count, _I64(8)), count, _I64(8))
            with cgutils.for_range(builder, count) as pf_loop:
                prefetch_line(builder, builder.gep(first, [builder.mul(pf_loop.index, per_line)]))
        for r in range(8):
            if dot:
                xv = _load_vec(builder, here[r], vt)
                builder.store(_fma(builder, xv, wd, builder.load(dacc[r])), dacc[r])
            if group:
                a = builder.load(acc[r])
                for t in range(8):
                    a = _fma(builder, broadcast(here[r], _I64(2 * t if f32 else t)), wv[t], a)
                builder.store(a, acc[r])
        advance = ir.FunctionType(here[0].type, [here[0].type])
        for r in range(8):  # in assembly: LLVM would make them indices again
            nxt = builder.asm(advance, f"addq $${step_bytes}, $0", "=r,0", [here[r]], side_effect=False)
            builder.store(nxt, rowj[r])
    done = builder.mul(blocks, _I64(step))
    tail = builder.sub(d, done)
    if not group:
        pass
    elif f32:  # the rest column pairs; an odd last column pairs with 0 (its coefficients are 0)
        with cgutils.for_range(builder, builder.sdiv(builder.add(tail, _I64(1)), _I64(2))) as loop:
            j = builder.add(done, builder.mul(loop.index, _I64(2)))
            wv = w_vector(builder.sdiv(j, _I64(2)))
            has_second = builder.icmp_signed("<", builder.add(j, _I64(1)), d)
            for r in range(8):
                x0 = builder.load(builder.gep(rowp[r], [j]))
                x1 = builder.select(
                    has_second, builder.load(builder.gep(rowp[r], [builder.add(j, _I64(1))])), ft(0.0)
                )
                two = builder.insert_element(builder.insert_element(zero, x0, _I32(0)), x1, _I32(1))
                xb = _shuffle(builder, two, zero, [0, 1] * 8)
                builder.store(_fma(builder, xb, wv, builder.load(acc[r])), acc[r])
    else:
        with cgutils.for_range(builder, tail) as loop:
            j = builder.add(done, loop.index)
            wv = w_vector(j)
            for r in range(8):
                xb = _splat(builder, builder.load(builder.gep(rowp[r], [j])), vt)
                builder.store(_fma(builder, xb, wv, builder.load(acc[r])), acc[r])
    if dot:
        with builder.if_then(builder.icmp_signed(">", tail, _I64(0))):
            m = _lane_mask(builder, tail, nl)
            wd = _masked_load(builder, builder.gep(wdot, [done]), m, vt)
            for r in range(8):
                xv = _masked_load(builder, builder.gep(rowp[r], [done]), m, vt)
                builder.store(_fma(builder, xv, wd, builder.load(dacc[r])), dacc[r])
    rmask = _lane_mask(builder, rows, 8)
    ot = _vec(ft, 8)
    if f32:
        if group:
            _store_pair_scores(builder, [builder.load(p) for p in acc], B, Z, ldz, c0, nq, i0, rows)
        if dot:
            s = _lane_sums8_f32(builder, [builder.load(p) for p in dacc])
            bq = builder.fptrunc(builder.load(builder.gep(B, [qd])), ft)
            ptr = builder.gep(Z, [builder.add(builder.mul(qd, ldz), i0)])
            _masked_store(builder, builder.fadd(s, _splat(builder, bq, ot)), ptr, rmask)
        return context.get_dummy_value()
    cls = _transpose8(builder, [builder.load(p) for p in acc])
    for c in range(8 if group else 0):
        with builder.if_then(builder.icmp_signed("<", _I64(c), nq)):
            q = builder.add(c0, _I64(c))
            bq = builder.load(builder.gep(B, [q]))
            ptr = builder.gep(Z, [builder.add(builder.mul(q, ldz), i0)])
            _masked_store(builder, builder.fadd(cls[c], _splat(builder, bq, ot)), ptr, rmask)
    if dot:
        s = _lane_sums8(builder, [builder.load(p) for p in dacc])
        bq = builder.load(builder.gep(B, [qd]))
        ptr = builder.gep(Z, [builder.add(builder.mul(qd, ldz), i0)])
        _masked_store(builder, builder.fadd(s, _splat(builder, bq, ot)), ptr, rmask)
    return context.get_dummy_value()


@intrinsic
def score_group_tile(typingctx, X, r0, rows, Wg, c0, wdot, dot, group, ZT, i0, nq, qd, b, pf_at, pf_n):
    """With group a 1-tuple, ZT[c0 + c, i0 + r] = X[r0 + r] . (the group's coefficients of
    class c) + b[c0 + c] for r < rows (<= 8) and c < nq (<= 8); with dot a 1-tuple,
    ZT[qd, i0 + r] = X[r0 + r] . wdot + b[qd]. X (n, d) float64 or float32; Wg group by
    group (the group of classes c0 .. c0 + 7 from row c0 // 8 times d, or P = (d + 1) // 2
    for float32, on), float64 (G d, 8): a row per column, class c in lane c; float32 by
    column pairs (G P, 16): row p holds class c's coefficients of columns 2 p and 2 p + 1
    in lanes 2 c and 2 c + 1 (0 past the last column); wdot (d,) in X's dtype; ZT (k, ldz)
    in X's dtype; b float64. Asks for pf_n cache lines of X from the flat element offset
    pf_at, one per row step."""
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in (X, Wg, wdot, ZT, b)):
        return None
    if X.dtype not in (types.float32, types.float64) or any(a.dtype != X.dtype for a in (Wg, wdot, ZT)):
        return None
    if not all(isinstance(t, types.BaseTuple) and len(t) <= 1 for t in (dot, group)):
        return None
    sig = types.void(X, r0, rows, Wg, c0, wdot, dot, group, ZT, i0, nq, qd, b, pf_at, pf_n)
    return sig, _score_group_tile_codegen


def _transpose16(builder, r):
    """Columns of the 16 x 16 matrix with rows r[0..15] (vectors of 16 float32 lanes), as
    fgd_transpose16_f in kernels/fastgd_score_rows.h: pairs of rows interleaved in each
    128-bit lane, then pairs of pairs, then the four row groups' 128-bit lanes side by side."""
    lo = [4 * L + e for L in range(4) for e in (0, 16, 1, 17)]
    hi = [4 * L + e for L in range(4) for e in (2, 18, 3, 19)]
    t = []
    for i in range(0, 16, 2):
        t += [_shuffle(builder, r[i], r[i + 1], lo), _shuffle(builder, r[i], r[i + 1], hi)]
    lo2 = [4 * L + e for L in range(4) for e in (0, 1, 16, 17)]
    hi2 = [4 * L + e for L in range(4) for e in (2, 3, 18, 19)]
    u = [None] * 16
    for i in range(0, 16, 4):  # u[i + s]: in lane L column 4 L + s of rows i .. i + 3
        u[i], u[i + 1] = _shuffle(builder, t[i], t[i + 2], lo2), _shuffle(builder, t[i], t[i + 2], hi2)
        u[i + 2], u[i + 3] = (
            _shuffle(builder, t[i + 1], t[i + 3], lo2),
            _shuffle(builder, t[i + 1], t[i + 3], hi2),
        )
    even = [4 * L + e for L in (0, 2, 4, 6) for e in range(4)]  # lanes 0, 2 of a, then of b
    odd = [4 * L + e for L in (1, 3, 5, 7) for e in range(4)]  # lanes 1, 3
    o = [None] * 16
    for s in range(4):
        g01a, g01b = _shuffle(builder, u[s], u[4 + s], even), _shuffle(builder, u[s], u[4 + s], odd)
        g23a, g23b = _shuffle(builder, u[8 + s], u[12 + s], even), _shuffle(builder, u[8 + s], u[12 + s], odd)
        o[s], o[8 + s] = _shuffle(builder, g01a, g23a, even), _shuffle(builder, g01a, g23a, odd)
        o[4 + s], o[12 + s] = _shuffle(builder, g01b, g23b, even), _shuffle(builder, g01b, g23b, odd)
    return o


def _score_rows_tile_codegen(context, builder, sig, args):
    (x_ty, _, _, w_ty, _, classes_ty, z_ty, _, b_ty, _, _) = sig.args
    args = _indices_as_intp(context, builder, sig, args)
    (x_arr, r0, rows, w_arr, q0, _, z_arr, i0, b_arr, pf_at, pf_n) = args
    f32 = x_ty.dtype == types.float32
    ft = ir.FloatType() if f32 else ir.DoubleType()
    nl = 16 if f32 else 8  # lanes of a vector: the tile's rows
    nq = len(classes_ty)
    vt = _vec(ft, nl)
    zero = ir.Constant(vt, None)
    X, (_, d) = _array(context, builder, x_ty, x_arr)
    W, _ = _array(context, builder, w_ty, w_arr)
    Z, (_, ldz) = _array(context, builder, z_ty, z_arr)
    B, _ = _array(context, builder, b_ty, b_arr)
    per_line = _I64(64 // (4 if f32 else 8))
    last = builder.sub(rows, _I64(1))
    rowp = []
    for r in range(nl):  # a missing row reads the last one
        row = builder.select(builder.icmp_signed("<", _I64(r), rows), _I64(r), last)
        rowp.append(builder.gep(X, [builder.mul(builder.add(r0, row), d)]))
    next_tile = builder.gep(X, [builder.mul(builder.add(r0, _I64(nl)), d)])
    w_pass = builder.gep(W, [builder.mul(q0, d)])  # the pass's coefficients, (d, nq)
    acc = [cgutils.alloca_once_value(builder, zero) for _ in range(nq)]
    transpose = _transpose16 if f32 else _transpose8

    def columns(j, count, mask):
        """count (<= nl) columns from j into the sums; mask: the masked loads of the last ones."""
        # the lines asked for from pf_at, one per column below pf_n: here, ahead of the
        # columns, so that their multiply-adds are one basic block
        asked = builder.sub(pf_n, j)
        asked = builder.select(builder.icmp_signed("<", asked, _I64(nl)), asked, _I64(nl))
        with cgutils.for_range(builder, asked) as loop:
            col = builder.add(j, loop.index)
            prefetch_line(builder, builder.gep(X, [builder.add(pf_at, builder.mul(col, per_line))]))
        if mask is None:
            c = [_load_vec(builder, builder.gep(p, [j]), vt) for p in rowp]
        else:
            c = [_masked_load(builder, builder.gep(p, [j]), mask, vt) for p in rowp]
        for r in range(nl):  # the next tile's rows (contiguous) into L1, nl lines a pass
            line = builder.add(builder.mul(j, per_line), builder.mul(_I64(r), per_line))
            prefetch_line(builder, builder.gep(next_tile, [line]), locality=3)
        cols = transpose(builder, c)
        w_cols = builder.gep(w_pass, [builder.mul(j, _I64(nq))])  # column j's nq coefficients
        a = [builder.load(p) for p in acc]
        for t in range(nl):
            if count is not None:
                # past the columns, cols[t] is 0 (masked loads): its multiply-adds add 0,
                # but its coefficients would lie past the pass's, so they read column j's
                live = builder.icmp_signed("<", _I64(t), count)
                offset = builder.select(live, _I64(t * nq), _I64(0))
            else:
                offset = _I64(t * nq)
            wrow = builder.gep(w_cols, [offset])
            for q in range(nq):
                w = _splat(builder, builder.load(builder.gep(wrow, [_I64(q)])), vt)
                a[q] = _fma(builder, cols[t], w, a[q])
        for q in range(nq):
            builder.store(a[q], acc[q])

    blocks = builder.sdiv(d, _I64(nl))
    with cgutils.for_range(builder, blocks) as loop:
        columns(builder.mul(loop.index, _I64(nl)), None, None)
    done = builder.mul(blocks, _I64(nl))
    tail = builder.sub(d, done)
    with builder.if_then(builder.icmp_signed(">", tail, _I64(0))):
        columns(done, tail, _lane_mask(builder, tail, nl))
    rmask = _lane_mask(builder, rows, nl)
    for c in range(nq):
        q = builder.add(q0, _I64(c))
        bq = builder.load(builder.gep(B, [q]))
        bq = builder.fptrunc(bq, ft) if f32 else bq
        ptr = builder.gep(Z, [builder.add(builder.mul(q, ldz), i0)])
        _masked_store(builder, builder.fadd(builder.load(acc[c]), _splat(builder, bq, vt)), ptr, rmask)
    return context.get_dummy_value()


@intrinsic
def score_rows_tile(typingctx, X, r0, rows, Wr, q0, classes, ZT, i0, b, pf_at, pf_n):
    """ZT[q0 + c, i0 + r] = X[r0 + r] . Wr[q0 d + j nq + c] over j, + b[q0 + c], for r <
    rows (<= the lanes of a vector: sixteen float32 rows, eight float64) and c < nq =
    len(classes) (a tuple; its length, at most SCORE_ROWS_CLASSES, is the number of
    classes): the tile's rows in the lanes, as kernels/fastgd_score_rows.h (per lanes' worth
    of columns, the rows transposed in registers, then one multiply-add per column and class
    with the coefficient broadcast). X (n, d) float64 or float32; Wr (kq d,) in X's dtype,
    the coefficients by pass (numba._score_rows_coefficients): the pass's from q0 d, (d, nq)
    row-major, so that a column's are nq apart, a constant; ZT (k, ldz) in X's dtype, b
    float64. Asks for the next tile's rows into L1, and for pf_n cache lines of X from the
    flat element offset pf_at, one per column (those of sixteen columns ahead of them)."""
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in (X, Wr, ZT, b)) or Wr.ndim != 1:
        return None
    if X.dtype not in (types.float32, types.float64) or any(a.dtype != X.dtype for a in (Wr, ZT)):
        return None
    if not isinstance(classes, types.BaseTuple) or not 1 <= len(classes) <= SCORE_ROWS_CLASSES:
        return None
    sig = types.void(X, r0, rows, Wr, q0, classes, ZT, i0, b, pf_at, pf_n)
    return sig, _score_rows_tile_codegen


def _panel_rows_codegen(context, builder, sig, args):
    (x_ty, _, _, r_ty, _, _, _, g_ty, _, _) = sig.args
    args = _indices_as_intp(context, builder, sig, args)
    (x_arr, start, m, r_arr, q0, n_classes, j0, g_arr, pf_at, pf_lines) = args
    f32 = x_ty.dtype == types.float32
    ft = ir.FloatType() if f32 else ir.DoubleType()
    nl = 16 if f32 else 8
    vt = _vec(ft, nl)
    zero = ir.Constant(vt, None)
    X, (_, d) = _array(context, builder, x_ty, x_arr)
    R, (_, ldr) = _array(context, builder, r_ty, r_arr)
    Gb, _ = _array(context, builder, g_ty, g_arr)
    left = builder.sub(d, j0)  # columns from j0 on
    per_line = _I64(64 // (4 if f32 else 8))
    base = builder.gep(R, [builder.mul(q0, ldr)])  # the group's first row of residuals

    def panel(Q):  # the code for Q classes, a compile-time constant
        J = panel_vectors.py_func(Q)
        masks = [_lane_mask(builder, builder.sub(left, _I64(u * nl)), nl, lane_bits=32) for u in range(J)]
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(J)] for _ in range(Q)]

        def rows(ldr_value, full):  # the loop over the rows, residual rows ldr_value apart
            with cgutils.for_range(builder, m) as loop:
                i = loop.index
                row = builder.gep(X, [builder.add(builder.mul(builder.add(start, i), d), j0)])
                if full:  # all J vectors within the row: plain loads
                    v = [_load_vec(builder, builder.gep(row, [_I64(u * nl)]), vt) for u in range(J)]
                else:
                    v = [
                        _masked_load(builder, builder.gep(row, [_I64(u * nl)]), masks[u], vt)
                        for u in range(J)
                    ]
                with builder.if_then(builder.icmp_signed("<", i, pf_lines), likely=True):
                    prefetch_line(builder, builder.gep(X, [builder.add(pf_at, builder.mul(i, per_line))]))
                ri = builder.gep(base, [i])
                for q in range(Q):
                    offset = (
                        _I64(ldr_value * q) if isinstance(ldr_value, int) else builder.mul(ldr_value, _I64(q))
                    )
                    c = _splat(builder, builder.load(builder.gep(ri, [offset])), vt)
                    for u in range(J):
                        builder.store(_fma(builder, c, v[u], builder.load(acc[q][u])), acc[q][u])

        # With the residuals' stride a constant (the default block's rows), a row's Q
        # residuals are loads at fixed offsets from one pointer; with a stride known only
        # at run time LLVM kept a pointer per class, more than the free registers, and
        # reloaded them at every row. float32 panels of J whole vectors (all but a last,
        # narrower one) load X without masks: with masks they took 1.1x the time (2M x 64,
        # nine classes, one core, X in L2); float64 ones with plain loads took 1.01-1.03x.
        fixed = builder.icmp_signed("==", ldr, _I64(PANEL_LDR))

        def masked_rows():
            with builder.if_else(fixed) as (fixed_stride, other_stride):
                with fixed_stride:
                    rows(PANEL_LDR, False)
                with other_stride:
                    rows(ldr, False)

        if f32:
            full = builder.icmp_signed(">=", left, _I64(J * nl))
            with builder.if_else(builder.and_(fixed, full)) as (fixed_full, other):
                with fixed_full:
                    rows(PANEL_LDR, True)
                with other:
                    masked_rows()
        else:
            masked_rows()
        for q in range(Q):
            grow = builder.gep(Gb, [builder.add(builder.mul(builder.add(q0, _I64(q)), d), j0)])
            for u in range(J):
                ptr = builder.gep(grow, [_I64(u * nl)])
                total = builder.fadd(_masked_load(builder, ptr, masks[u], vt), builder.load(acc[q][u]))
                _masked_store(builder, total, ptr, masks[u])

    # One case for each number of classes, 1 to PANEL_CLASSES_MAX.
    done = builder.append_basic_block("panel.done")
    switch = builder.switch(n_classes, done)
    for Q in range(1, PANEL_CLASSES_MAX + 1):
        case = builder.append_basic_block(f"panel.q{Q}")
        switch.add_case(n_classes.type(Q), case)
        builder.position_at_end(case)
        panel(Q)
        builder.branch(done)
    builder.position_at_end(done)
    with cgutils.for_range(builder, builder.sub(pf_lines, m)) as loop:  # lines beyond one a row
        line = builder.add(m, loop.index)
        prefetch_line(builder, builder.gep(X, [builder.add(pf_at, builder.mul(line, per_line))]))
    return context.get_dummy_value()


@numba.njit(cache=True)
def panel_vectors(n_classes):
    """Vectors of columns per gradient panel of n_classes classes (as FGD_PANEL_VECS in
    kernels/fastgd_tiles_impl.h): as many as keep the sums within the registers."""
    return 4 if n_classes <= 6 else 2


@intrinsic
def panel_rows(typingctx, X, start, m, RT, q0, n_classes, j0, Gb, pf_at, pf_lines):
    """Gb[q0 + q, j0 + c] += sum_{i < m} RT[q0 + q, i] X[start + i, j0 + c] for q < Q =
    n_classes (1 to PANEL_CLASSES_MAX; each has its compiled case) and the panel_vectors(Q) vectors
    of columns from j0 (eight float64 or sixteen float32 each; columns past d masked): each
    row's vectors of X loaded once for the Q classes, the Q J sums in registers over the m
    rows, added to Gb (in X's dtype) once. Asks for pf_lines cache lines of X from the flat
    element offset pf_at on the way, one a row (the rest after the rows)."""
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in (X, RT, Gb)):
        return None
    if X.dtype not in (types.float32, types.float64) or RT.dtype != X.dtype or Gb.dtype != X.dtype:
        return None
    return types.void(X, start, m, RT, q0, n_classes, j0, Gb, pf_at, pf_lines), _panel_rows_codegen


def _exp_reduce(builder, x, f32):
    """x = k ln2 + r, |r| <= ln2 / 2, for x <= 0 clamped to exp_nonpositive's minimum (NaN
    stays NaN): (km, k, r), km = k + the rounding constant, whose low bits hold k."""
    minimum, inv_ln2, magic, ln2_hi, ln2_lo = _PAIR_CONSTANTS[types.float32 if f32 else types.float64][:5]
    vt = x.type

    def const(c):
        return ir.Constant(vt, [c] * vt.count)

    v = builder.select(builder.fcmp_ordered("<", x, const(minimum)), const(minimum), x)  # NaN kept
    km = _fma(builder, v, const(inv_ln2), const(magic))
    k = builder.fsub(km, const(magic))
    neg_k = builder.fneg(k)  # folded into the multiply-adds (vfnmadd; 0 - k took a subtraction)
    return km, k, _fma(builder, neg_k, const(ln2_lo), _fma(builder, neg_k, const(ln2_hi), v))


def _exp_nonpositive(builder, x, f32):
    """exp(x) for x <= 0 on a 512-bit vector: exp_nonpositive's steps (exp_nonpositive_f32's
    for float32), the polynomial by Estrin's scheme for float64 and Horner's for float32,
    2**k by vscalef (as kernels/fastgd_vecmath.h: one instruction where the exponent's bits
    took an integer add, an and, a shift and a multiply)."""
    poly = _PAIR_CONSTANTS[types.float32 if f32 else types.float64][5]
    vt = x.type

    def const(c, t=vt):
        return ir.Constant(t, [c] * t.count)

    _, k, r = _exp_reduce(builder, x, f32)
    a = [const(c) for c in reversed(poly)]  # a[i]: the coefficient of r**i
    if f32:  # degree 6, by Horner's scheme (as fgd_poly6_v16 of kernels/fastgd_vecmath.h)
        p = _horner(builder, a[::-1], r)
    else:  # degree 11
        r2 = builder.fmul(r, r)
        r4 = builder.fmul(r2, r2)
        pairs = [_fma(builder, a[i + 1], r, a[i]) for i in range(0, 12, 2)]
        q = [_fma(builder, pairs[i + 1], r2, pairs[i]) for i in range(0, 6, 2)]
        p = _fma(builder, q[2], builder.fmul(r4, r4), _fma(builder, q[1], r4, q[0]))
    return _scalef(builder, p, k)


def _log1p(builder, x):
    """log1p of each lane (the C library's, one call a lane)."""
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(x.type.element, [x.type.element]), "log1p"
    )
    out = x
    for lane in range(x.type.count):
        out = builder.insert_element(
            out, builder.call(fn, [builder.extract_element(x, _I32(lane))]), _I32(lane)
        )
    return out


def _log(builder, x):
    fn = _intrinsic(builder, "llvm.log", ir.FunctionType(x.type, [x.type]), x.type)
    return builder.call(fn, [x])


#: The most classes whose float32 residual sums softmax_steps keeps in float32 (a stack
#: array of that many vectors), adding them into float64 every STEPS_SUM_TILES tiles of
#: sixteen rows and at the end (as FGD_STEPS_SUM_TILES_F in kernels/fastgd_softmax_steps.h:
#: at most 16 terms a lane, each at most the largest weight); more classes widen them at
#: each tile.
STEPS_LOCAL_SUMS_MAX = 64
STEPS_SUM_TILES = 16
#: Tiles a step of softmax_steps, their instructions interleaved (FGD_STEPS_TILES in
#: kernels/fastgd_softmax_steps.h, which says why).
STEPS_TILES = 2


def _softmax_steps_codegen(context, builder, sig, args):
    (z_ty, _, _, _, y_ty, _, sw_ty, has_sw_ty, rs_ty, logs_ty, x_ty, _, _) = sig.args
    args = _indices_as_intp(context, builder, sig, args)
    (z_arr, m, k, kq, y_arr, start, sw_arr, has_sw, rs_arr, logs_arr, x_arr, pf_at, pf_lines) = args
    f32 = z_ty.dtype == types.float32
    ft = ir.FloatType() if f32 else ir.DoubleType()
    f64 = ir.DoubleType()
    nl = 16 if f32 else 8
    U = STEPS_TILES
    vt, dvt = _vec(ft, nl), _vec(f64, nl)
    Z, (_, ldz) = _array(context, builder, z_ty, z_arr)
    Y, _ = _array(context, builder, y_ty, y_arr)
    SW, _ = _array(context, builder, sw_ty, sw_arr)
    RS, _ = _array(context, builder, rs_ty, rs_arr)
    LOGS, _ = _array(context, builder, logs_ty, logs_arr)
    X, _ = _array(context, builder, x_ty, x_arr)
    weighted = builder.icmp_unsigned("!=", has_sw, ir.Constant(has_sw.type, 0))
    one, zero = ir.Constant(vt, [1.0] * nl), ir.Constant(vt, None)
    done = ir.Constant(dvt, [1.0] * nl)
    loss = cgutils.alloca_once_value(builder, ir.Constant(dvt, None))
    # the unweighted logarithms' state, carried from block to block (see softmax_steps)
    prod_ptr = builder.bitcast(LOGS, dvt.as_pointer())
    tiny_ptr = builder.bitcast(builder.gep(LOGS, [_I64(nl)]), dvt.as_pointer())
    count_ptr = builder.gep(LOGS, [_I64(2 * nl)])
    prod = cgutils.alloca_once_value(builder, builder.load(prod_ptr, align=8))
    tiny = cgutils.alloca_once_value(builder, builder.load(tiny_ptr, align=8))
    in_prod = cgutils.alloca_once_value(builder, builder.fptosi(builder.load(count_ptr), _I64))
    logs = cgutils.alloca_once_value(builder, f64(0.0))
    pf_left = cgutils.alloca_once_value(builder, pf_lines)
    pf_ptr = cgutils.alloca_once_value(builder, pf_at)
    tiles = builder.sdiv(builder.add(m, _I64(nl - 1)), _I64(nl))
    per_tile = builder.sdiv(
        builder.add(pf_lines, builder.sub(tiles, _I64(1))),
        builder.select(builder.icmp_signed(">", tiles, _I64(0)), tiles, _I64(1)),
    )
    per_step = builder.mul(per_tile, _I64(U))
    per_line = _I64(64 // (4 if f32 else 8))
    # Tiles whose product of sums of exponentials (each in [1, k]) stays below 2**1000.
    kf = builder.sitofp(builder.select(builder.icmp_signed(">", k, _I64(2)), k, _I64(2)), f64)
    fn_log2 = builder.module.declare_intrinsic("llvm.log2", [f64])
    fold = builder.fptosi(builder.fdiv(f64(1000.0), builder.call(fn_log2, [kf])), _I64)
    fold = builder.select(builder.icmp_signed("<", fold, _I64(U)), _I64(U), fold)

    def add_to_rs(q, value):  # rsv[q] += value (float64 lanes)
        rs_ptr = builder.bitcast(builder.gep(RS, [builder.mul(q, _I64(nl))]), dvt.as_pointer())
        builder.store(builder.fadd(builder.load(rs_ptr, align=8), value), rs_ptr, align=8)

    # float32 residual sums in float32 over STEPS_SUM_TILES tiles, for k <= 64
    RL = cgutils.alloca_once(builder, vt, size=STEPS_LOCAL_SUMS_MAX)
    local = builder.icmp_signed("<=", k, _I64(STEPS_LOCAL_SUMS_MAX))
    in_sums = cgutils.alloca_once_value(builder, _I64(0))

    def fold_local_sums():  # rsv += RL (widened), RL = 0
        with cgutils.for_range(builder, k) as loop:
            rl_ptr = builder.gep(RL, [loop.index])
            add_to_rs(loop.index, builder.fpext(builder.load(rl_ptr), dvt))
            builder.store(zero, rl_ptr)
        builder.store(_I64(0), in_sums)

    if f32:
        with builder.if_then(local):
            with cgutils.for_range(builder, k) as loop:
                builder.store(zero, builder.gep(RL, [loop.index]))

    def add_logs(vec):  # logs += the sum of the lanes' logarithms
        builder.store(builder.fadd(builder.load(logs), _fold_lanes(builder, _log(builder, vec))), logs)

    steps = builder.sdiv(builder.add(tiles, _I64(U - 1)), _I64(U))
    with cgutils.for_range(builder, steps) as step:
        tl = []  # the step's tiles: their rows, masks, weights, labels and sums
        for u in range(U):
            i0 = builder.mul(builder.add(builder.mul(step.index, _I64(U)), _I64(u)), _I64(nl))
            rows = builder.sub(m, i0)
            rows = builder.select(builder.icmp_signed("<", rows, _I64(nl)), rows, _I64(nl))
            rm = _lane_mask(builder, rows, nl)  # none past m
            wt = builder.select(rm, one, zero)
            sw_v = _masked_load(
                builder,
                builder.gep(SW, [builder.add(start, i0)]),
                builder.and_(rm, _splat(builder, weighted, _vec(_I1, nl))),
                vt,
            )
            yv = _masked_load(builder, builder.gep(Y, [builder.add(start, i0)]), rm, _vec(_I64, nl))
            if f32:  # sixteen labels (below k) as one vector of 32-bit lanes: one compare a class
                yv = builder.trunc(yv, _vec(_I32, nl))
            tl.append({"i0": i0, "rm": rm, "wt": builder.select(weighted, sw_v, wt), "yv": yv})

        def zrow(t, q):  # class q's scores of tile t
            return builder.gep(Z, [builder.add(builder.mul(q, ldz), t["i0"])])

        def is_label(t, q):
            lt = t["yv"].type.element
            return builder.icmp_signed(
                "==", t["yv"], _splat(builder, builder.trunc(q, lt) if f32 else q, t["yv"].type)
            )

        with builder.if_then(builder.icmp_signed("<", kq, k)):  # the last class scores 0
            for t in tl:
                _masked_store(builder, zero, zrow(t, kq), t["rm"])
        for t in tl:
            t["top"] = cgutils.alloca_once_value(
                builder, _masked_load(builder, zrow(t, _I64(0)), t["rm"], vt)
            )
        with cgutils.for_range(builder, builder.sub(k, _I64(1))) as loop:
            for t in tl:
                zq = _masked_load(builder, zrow(t, builder.add(loop.index, _I64(1))), t["rm"], vt)
                top = builder.load(t["top"])
                builder.store(
                    builder.select(builder.fcmp_ordered(">", zq, top), zq, top), t["top"]
                )  # NaN skipped
        for t in tl:
            t["top_v"] = builder.load(t["top"])
            t["zy"] = cgutils.alloca_once_value(builder, zero)
            t["total"] = cgutils.alloca_once_value(builder, zero)
            t["rest"] = cgutils.alloca_once_value(builder, zero)  # the exponentials but the maximum's
            t["below_n"] = cgutils.alloca_once_value(builder, zero)  # classes below the maximum
        n_pf = builder.load(pf_left)
        n_pf = builder.select(builder.icmp_signed("<", per_step, n_pf), per_step, n_pf)
        builder.store(builder.sub(builder.load(pf_left), n_pf), pf_left)
        with cgutils.for_range(builder, k) as loop:
            q = loop.index
            with builder.if_then(builder.icmp_signed("<", q, n_pf), likely=True):
                at = builder.load(pf_ptr)
                prefetch_line(builder, builder.gep(X, [at]))
                builder.store(builder.add(at, per_line), pf_ptr)
            for t in tl:
                zq = _masked_load(builder, zrow(t, q), t["rm"], vt)
                builder.store(builder.select(is_label(t, q), zq, builder.load(t["zy"])), t["zy"])
                e = _exp_nonpositive(builder, builder.fsub(zq, t["top_v"]), f32)
                _masked_store(builder, e, zrow(t, q), t["rm"])
                builder.store(builder.fadd(builder.load(t["total"]), e), t["total"])
                below = builder.fcmp_ordered("<", zq, t["top_v"])
                rest = builder.load(t["rest"])
                builder.store(builder.select(below, builder.fadd(rest, e), rest), t["rest"])
                below_n = builder.load(t["below_n"])
                builder.store(builder.select(below, builder.fadd(below_n, one), below_n), t["below_n"])
        with cgutils.for_range(
            builder, builder.sub(n_pf, builder.select(builder.icmp_signed("<", k, n_pf), k, n_pf))
        ) as loop:
            at = builder.load(pf_ptr)
            prefetch_line(builder, builder.gep(X, [at]))
            builder.store(builder.add(at, per_line), pf_ptr)
        for t in tl:
            rm, wt, top_v = t["rm"], t["wt"], t["top_v"]
            term = builder.select(rm, builder.fmul(wt, builder.fsub(builder.load(t["zy"]), top_v)), zero)
            term = builder.fpext(term, dvt) if f32 else term
            builder.store(builder.fsub(builder.load(loss), term), loss)
            # log(sum) as log1p(rest): rest = the sum but the maximum's 1 (ties past the first
            # count 1 each); see fgd_log1p_split in kernels/fastgd_softmax_steps.h.
            # (k less those below it: one compare a class for both rest and this count)
            ties = builder.fsub(_splat(builder, builder.sitofp(k, ft), vt), builder.load(t["below_n"]))
            rest_v = builder.fadd(builder.load(t["rest"]), builder.fsub(ties, one))
            rest_v = builder.select(rm, rest_v, zero)
            rest_d = builder.fpext(rest_v, dvt) if f32 else rest_v
            with builder.if_else(weighted) as (then, otherwise):
                with then:
                    wt_d = builder.fpext(wt, dvt) if f32 else wt
                    log_terms = _fold_lanes(builder, builder.fmul(wt_d, _log1p(builder, rest_d)))
                    builder.store(builder.fadd(builder.load(logs), log_terms), logs)
                with otherwise:
                    small = builder.and_(
                        builder.fcmp_ordered("<", rest_d, ir.Constant(dvt, [2.0**-20] * nl)), rm
                    )
                    series = builder.fsub(
                        rest_d, builder.fmul(ir.Constant(dvt, [0.5] * nl), builder.fmul(rest_d, rest_d))
                    )
                    builder.store(
                        builder.fadd(
                            builder.load(tiny), builder.select(small, series, ir.Constant(dvt, None))
                        ),
                        tiny,
                    )
                    factor = builder.select(small, done, builder.fadd(done, rest_d))
                    builder.store(builder.fmul(builder.load(prod), factor), prod)
            t["scale"] = builder.fdiv(wt, builder.select(rm, builder.load(t["total"]), one))
        with builder.if_then(builder.not_(weighted)):  # fold the products before they could overflow
            count = builder.add(builder.load(in_prod), _I64(U))
            builder.store(count, in_prod)
            with builder.if_then(builder.icmp_signed(">", builder.add(count, _I64(U)), fold)):
                add_logs(builder.load(prod))
                builder.store(done, prod)
                builder.store(_I64(0), in_prod)
        with cgutils.for_range(builder, k) as loop:
            q = loop.index
            for t in tl:
                rm, wt = t["rm"], t["wt"]
                mq = builder.and_(is_label(t, q), rm)
                p = builder.select(
                    rm, builder.fmul(_masked_load(builder, zrow(t, q), rm, vt), t["scale"]), zero
                )
                p = builder.select(mq, builder.fsub(p, wt), p)
                _masked_store(builder, p, zrow(t, q), rm)
                if f32:  # float32 sums where k allows (STEPS_LOCAL_SUMS_MAX), else widened now
                    with builder.if_else(local) as (then, otherwise):
                        with then:
                            rl_ptr = builder.gep(RL, [q])
                            builder.store(builder.fadd(builder.load(rl_ptr), p), rl_ptr)
                        with otherwise:
                            add_to_rs(q, builder.fpext(p, dvt))
                else:
                    add_to_rs(q, p)
        if f32:  # the float32 sums into float64 every STEPS_SUM_TILES tiles at most
            with builder.if_then(local):
                count = builder.add(builder.load(in_sums), _I64(U))
                builder.store(count, in_sums)
                with builder.if_then(
                    builder.icmp_signed(">", builder.add(count, _I64(U)), _I64(STEPS_SUM_TILES))
                ):
                    fold_local_sums()
    if f32:
        with builder.if_then(local):
            fold_local_sums()
    builder.store(builder.load(prod), prod_ptr, align=8)
    builder.store(builder.load(tiny), tiny_ptr, align=8)
    builder.store(builder.sitofp(builder.load(in_prod), f64), count_ptr)
    return builder.fadd(_fold_lanes(builder, builder.load(loss)), builder.load(logs))


@intrinsic
def softmax_steps(typingctx, ZT, m, k, kq, y, start, sw, has_sw, rsv, logs, X, pf_at, pf_lines):
    """The softmax steps of a block (as kernels/fastgd_softmax_steps.h), eight float64 or
    sixteen float32 rows a vector, STEPS_TILES vectors a step: ZT (k, ldz) from the block's
    class scores (with kq < k the last class scores 0, its row written here) to its
    residuals s (p - onehot), in place; rsv (k, lanes) float64 += the residuals' sums by
    lane; returns the block's loss sum, float64, but for the unweighted logarithms that
    logs (float64, 2 lanes + 1: per lane the product of 1 + rest, which starts at 1, and the
    sum of the rest below 2**-20, then the tiles in the products) carries from block to
    block (steps_logs_sum gives them after the last block). y and sw: the labels (int64)
    and weights (X's dtype, used where has_sw) of rows start .. start + m. Asks for
    pf_lines cache lines of X from the flat element offset pf_at on the way, an equal share
    in each tile."""
    arrays = (ZT, y, sw, rsv, logs, X)
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in arrays):
        return None
    if ZT.dtype not in (types.float32, types.float64) or sw.dtype != ZT.dtype:
        return None
    if rsv.dtype != types.float64 or logs.dtype != types.float64 or y.dtype != types.int64:
        return None
    sig = types.float64(ZT, m, k, kq, y, start, sw, has_sw, rsv, logs, X, pf_at, pf_lines)
    return sig, _softmax_steps_codegen


#: Bytes of x per part of logistic_one_feature (FGD_ONE_FEATURE_PART_BYTES in
#: kernels/fastgd_one_feature.c): the rows between two foldings of its products.
ONE_FEATURE_PART_BYTES = 4096
#: How far ahead each vector step asks for a line of x and one of y, into L1
#: (FGD_ONE_FEATURE_AHEAD_BYTES in kernels/fastgd_one_feature.c, which says why).
ONE_FEATURE_AHEAD_BYTES = 4096
LN2 = 0.6931471805599453


def _scalef(builder, a, k):
    """a 2**k for vectors a and k (k integral) of 512 bits: AVX-512's vscalef, one
    instruction where the exponent's bits take an integer add, a shift and a multiply.
    An x86 AVX-512 intrinsic: only for code compiled where the CPU has AVX-512."""
    vt = a.type
    f32 = isinstance(vt.element, ir.FloatType)
    mask_t = ir.IntType(vt.count)
    name = f"llvm.x86.avx512.mask.scalef.{'ps' if f32 else 'pd'}.512"
    fnty = ir.FunctionType(vt, [vt, vt, vt, mask_t, _I32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    return builder.call(fn, [a, k, a, ir.Constant(mask_t, -1), _I32(4)])  # 4: the current rounding


def _divide(builder, a, b):
    """a / b for 512-bit vectors by the division instruction (AVX-512's vdiv, current
    rounding). Under fast-math LLVM turns a float32 fdiv into a reciprocal estimate and a
    Newton step (four operations), and the d = 1 logistic loop is bound by its operations
    on the AMD EPYC test VM: 10M x 1 float32 with labels, the two builds in one process,
    0.44 -> 0.49, 0.41 -> 0.46 and 0.31 -> 0.33 of the read (float64: the same results and
    speed as with fdiv)."""
    vt = a.type
    name = f"llvm.x86.avx512.div.{'ps' if isinstance(vt.element, ir.FloatType) else 'pd'}.512"
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, _I32]), name)
    return builder.call(fn, [a, b, _I32(4)])  # 4: the current rounding


def _x86_call(builder, name, a, *operands):
    """An AVX-512 intrinsic ``name`` (``pd`` or ``ps`` for a's type) on a 512-bit vector a
    with all lanes active: operands then a pass-through of a, the mask and 4 (the current
    rounding)."""
    vt = a.type
    f32 = isinstance(vt.element, ir.FloatType)
    mask_t = ir.IntType(vt.count)
    name = name.format("ps" if f32 else "pd")
    fnty = ir.FunctionType(vt, [vt] + [o.type for o in operands] + [vt, mask_t, _I32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    return builder.call(fn, [a, *operands, a, ir.Constant(mask_t, -1), _I32(4)])


def _exp2_neg_abs_reduce(builder, t, clamp, floor=False):
    """For t = z / ln 2: v = -min(|t|, clamp) = k + f with k an integer, as
    kernels/fastgd_vecmath.h: AVX-512DQ's vrange (the smaller magnitude, its sign set) and
    vreduce (no exceptions). Returns (k, f): f = v - round(v), |f| <= 1/2; with floor,
    f = v - floor(v) in [0, 1) and v for k (vscalef multiplies by 2**floor(v) itself, so
    no subtraction makes k)."""
    vt = t.type
    v = _x86_call(
        builder, "llvm.x86.avx512.mask.range.{}.512", t, ir.Constant(vt, [clamp] * vt.count), _I32(0x0E)
    )
    f = _x86_call(builder, "llvm.x86.avx512.mask.reduce.{}.512", v, _I32(0x09 if floor else 0x08))
    return (v if floor else builder.fsub(v, f)), f


llvm_binding.initialize_native_asmparser()  # for _label_mask's inline assembly


def _label_mask(builder, v):
    """<n x i1>: the lanes of the n (8 or 16) uint8 labels v that are not 0, by vptestmb
    (AVX-512BW) in inline assembly. From a byte compare LLVM takes the mask of the zero
    labels and blends each result it selects (two operations where the C loop's masked
    subtraction takes one); this mask it cannot invert."""
    n = v.type.count
    wide = v  # 16 bytes: eight labels take eight zeros after them
    if n != 16:
        lanes = ir.Constant(_vec(_I32, 16), list(range(16)))
        wide = builder.shuffle_vector(v, ir.Constant(v.type, None), lanes)
    fnty = ir.FunctionType(ir.IntType(16), [wide.type])
    bits = builder.asm(fnty, "vptestmb $1, $1, $0", "=k,v", [wide], side_effect=False)
    if n != 16:
        bits = builder.trunc(bits, ir.IntType(n))
    return builder.bitcast(bits, _vec(_I1, n))


def _multiply_where_not(builder, a, b, mask):
    """a b in the lanes where mask (<16 x i1>) is false, a elsewhere: knotw and a masked
    vmulps in inline assembly, as the C loop's _mm512_mask_mul_ps; from a select LLVM
    emits a multiply and a blend, which took the C loop 3% longer."""
    bits = builder.bitcast(mask, ir.IntType(16))
    fnty = ir.FunctionType(ir.LiteralStructType([a.type, ir.IntType(16)]), [b.type, bits.type, a.type])
    out = builder.asm(
        fnty, "knotw $3, $1\n\tvmulps $2, $0, $0 {$1}", "=v,=&^Yk,v,^Yk,0", [b, bits, a], side_effect=False
    )
    return builder.extract_value(out, 0)


def _logistic_one_feature_codegen(context, builder, sig, args):
    x_ty = sig.args[0]
    x_arr, y_arr, lo, hi, w0, b = _indices_as_intp(context, builder, sig, args)
    f32 = x_ty.dtype == types.float32
    ft = ir.FloatType() if f32 else ir.DoubleType()
    f64 = ir.DoubleType()
    nl = 16 if f32 else 8
    vt, dvt = _vec(ft, nl), _vec(f64, nl)
    it = ir.IntType(32 if f32 else 64)
    ivt = _vec(it, nl)
    X, _ = _array(context, builder, x_ty, x_arr)
    Y, _ = _array(context, builder, sig.args[1], y_arr)
    labels = sig.args[1].dtype == types.uint8  # y as one byte a row
    bias, _, bits = _PAIR_CONSTANTS[x_ty.dtype][6:9]
    mantissa_bits = (1 << bits) - 1

    def const(c, t=vt):
        return ir.Constant(t, [c] * t.count)

    zero, one = const(0.0), const(1.0)

    def per_ln2(value, ty):  # value / ln 2 in float64, then in X's dtype
        return context.cast(
            builder,
            builder.fdiv(context.cast(builder, value, ty, types.float64), f64(LN2)),
            types.float64,
            x_ty.dtype,
        )

    # float64 scores t = z / ln 2 (fastgd_one_feature.c): e^-|z| = 2**-|t|; float32 keeps z
    # for the loss terms and takes t = z (1 / ln 2) for the exponential
    if f32:
        w_v = _splat(builder, context.cast(builder, w0, sig.args[4], x_ty.dtype), vt)
        b_v = _splat(builder, context.cast(builder, b, sig.args[5], x_ty.dtype), vt)
    else:
        w_v = _splat(builder, per_ln2(w0, sig.args[4]), vt)
        b_v = _splat(builder, per_ln2(b, sig.args[5]), vt)
    clamp = float(-EXP_MIN_F32 / LN2) if f32 else -EXP_MIN / LN2
    # Sums by lane, loss and loss_pos (float64: in units of ln 2): float64 rows sum in X's
    # dtype throughout; float32 rows in float32 over a part, then into the float64 totals.
    # The float64 totals take eight lanes (float32: lanes i and i + 8 added, as C's
    # fgd_widen_sum), so that they stay in registers through the steps.
    part_sums = [cgutils.alloca_once_value(builder, zero) for _ in range(4)]  # loss, loss_pos, dz, g
    tvt = _vec(f64, 8)
    totals = [cgutils.alloca_once_value(builder, const(0.0, tvt)) for _ in range(3)]  # loss terms, dz, g
    p_prod = cgutils.alloca_once_value(builder, one)  # of 1 - q (= 1 / (1 + e))
    p_exp = cgutils.alloca_once_value(builder, const(0.0, tvt))  # exponents taken out of it

    def halves(v):
        """v's lanes i and i + 8 (float32 or int32: sixteen lanes), or v (eight lanes)."""
        if v.type.count == 8:
            return v, None
        return _shuffle(builder, v, v, range(8)), _shuffle(builder, v, v, range(8, 16))

    def widen_sum(v):
        """float32 v's sixteen lanes as eight float64 lanes, i and i + 8 added."""
        lo, hi = halves(v)
        return builder.fadd(builder.fpext(lo, tvt), builder.fpext(hi, tvt))

    def accumulate(slot, value, mask=None, op=builder.fadd):
        """slot op value in the lanes of mask (None: all): one masked operation."""
        total = builder.load(slot)
        value = op(total, value)
        builder.store(value if mask is None else builder.select(mask, value, total), slot)

    def horner(coefs, r):
        return _horner(builder, [const(c) for c in coefs], r)

    def sums(xv, yv, live, t, nonneg, sig):
        """Adds a vector of rows to the part's sums given sigmoid(z) (t: the scores; live:
        None, or the lanes that count, the others loaded as x = y = 0, which add 0 to the
        loss's y t and to g; yv: the targets in X's dtype, or with labels the mask of the
        rows labelled 1)."""
        loss, loss_pos, dz, g = part_sums
        if labels:  # masked subtractions where y = 1, as the C loop: no vector of targets
            res = builder.select(yv, builder.fsub(sig, one), sig)
            accumulate(loss, t, yv, builder.fsub)
        else:
            res = builder.fsub(sig, yv)
            builder.store(_fma(builder, builder.fsub(const(-0.0), yv), t, builder.load(loss)), loss)
        accumulate(loss_pos, t, nonneg if live is None else builder.and_(nonneg, live))
        accumulate(dz, res, live)
        builder.store(_fma(builder, res, xv, builder.load(g)), g)

    def front(xv):
        """float32 (fgd_one_front): z, kept for the loss terms, e = e^-|z| from t = z (1 /
        ln 2) (fgd_exp2f_neg_abs_v16), whether z >= 0, and 1 + e."""
        z = _fma(builder, xv, w_v, b_v)
        k, f = _exp2_neg_abs_reduce(builder, builder.fmul(z, const(float(INV_LN2_F32))), clamp, floor=True)
        e = _scalef(builder, horner([float(c) for c in EXP2_FLOOR_POLY_F32], f), k)
        return z, e, builder.fcmp_ordered(">=", z, zero), builder.fadd(one, e)

    def back(xv, yv, live, fr, u):
        """float32 (fgd_one_back): the sums given u = 1 / (1 + e); sigmoid(z) = u for z >=
        0, e u below (the product's factor u is the caller's)."""
        z, e, nonneg, _ = fr
        sums(xv, yv, live, z, nonneg, _multiply_where_not(builder, u, e, nonneg))

    def multiply_product(factor, live=None):
        prod = builder.load(p_prod)
        value = builder.fmul(prod, factor)
        builder.store(value if live is None else builder.select(live, value, prod), p_prod)

    def step(xv, yv, live):
        """One vector of rows (yv and live as in sums), its own division."""
        if f32:
            fr = front(xv)
            u = _divide(builder, one, fr[3])
            back(xv, yv, live, fr, u)
            multiply_product(u, live)
            return
        # float64: e^-|z| = num / den (fgd_exp2_neg_abs_ratio_v8d), q = num / (num + den)
        t = _fma(builder, xv, w_v, b_v)
        nonneg = builder.fcmp_ordered(">=", t, zero)
        k, f = _exp2_neg_abs_reduce(builder, t, clamp)
        s2 = builder.fmul(f, f)
        even, odd = horner(PADE_EXP2_EVEN, s2), horner(PADE_EXP2_ODD, s2)
        num = _scalef(builder, _fma(builder, odd, f, even), k)
        den = _fma(builder, builder.fsub(const(-0.0), odd), f, even)
        q = _divide(builder, num, builder.fadd(num, den))
        # q = sigmoid(-|z|): sigmoid(z) = 1 - q for z >= 0, q below
        sums(xv, yv, live, t, nonneg, builder.select(nonneg, builder.fsub(one, q), q))
        prod = builder.load(p_prod)
        factor = _fma(builder, builder.fsub(const(-0.0), q), prod, prod)  # prod (1 - q), one rounding
        builder.store(factor if live is None else builder.select(live, factor, prod), p_prod)

    def quad(i):
        """float32, 64 full rows from row i with one division (fgd_one_quad_f): r = 1 /
        (d0 d1 d2 d3) of the four vectors' denominators, u0 = r (d2 d3) d1 and so on."""
        rows = [builder.add(i, _I64(lane)) for lane in range(0, 64, nl)]
        xs = [_load_vec(builder, builder.gep(X, [r]), vt) for r in rows]
        fronts = [front(xv) for xv in xs]
        d = [fr[3] for fr in fronts]
        d01, d23 = builder.fmul(d[0], d[1]), builder.fmul(d[2], d[3])
        r = _divide(builder, one, builder.fmul(d01, d23))
        r01, r23 = builder.fmul(r, d23), builder.fmul(r, d01)
        us = [
            builder.fmul(r01, d[1]),
            builder.fmul(r01, d[0]),
            builder.fmul(r23, d[3]),
            builder.fmul(r23, d[2]),
        ]
        multiply_product(r)
        for row, xv, fr, u in zip(rows, xs, fronts, us, strict=True):
            back(xv, targets(row, None), None, fr, u)

    def take_exponent(slot):
        """The product in slot (positive, normal) to its mantissa in [1, 2); returns its
        exponents (float64)."""
        v = builder.bitcast(builder.load(slot), ivt)
        e = builder.sub(builder.lshr(v, const(bits, ivt)), const(bias, ivt))
        m = builder.or_(builder.and_(v, const(mantissa_bits, ivt)), const(bias << bits, ivt))
        builder.store(builder.bitcast(m, vt), slot)
        lo, hi = halves(e)
        return builder.sitofp(lo if hi is None else builder.add(lo, hi), tvt)

    def targets(i, live):
        """y's vector of rows from i (live: None, or the lanes to load), in X's dtype; uint8
        labels as the mask of those labelled 1 (a byte compare, no conversion)."""
        ptr = builder.gep(Y, [i])
        if not labels:
            return _load_vec(builder, ptr, vt) if live is None else _masked_load(builder, ptr, live, vt)
        bt = _vec(ir.IntType(8), nl)
        v = _load_vec(builder, ptr, bt) if live is None else _masked_load(builder, ptr, live, bt)
        return _label_mask(builder, v)

    itemsize = 4 if f32 else 8
    part_rows = ONE_FEATURE_PART_BYTES // itemsize
    ahead = ONE_FEATURE_AHEAD_BYTES // itemsize

    def part_rows_from(part, end):
        """The rows part..end: its vectors, then its sums folded."""
        start = part
        if f32:  # 64 rows a step where the part's lines ahead lie before hi: four vectors,
            # a line of labels (or four of y) and four of x asked for, no test a vector
            before_hi = builder.icmp_signed("<=", builder.add(end, _I64(ahead)), hi)
            quads = builder.select(before_hi, builder.sdiv(builder.sub(end, part), _I64(64)), _I64(0))
            with cgutils.for_range(builder, quads) as loop:
                i = builder.add(part, builder.mul(loop.index, _I64(64)))
                at = builder.add(i, _I64(ahead))
                for lane in range(0, 64, nl):
                    prefetch_line(builder, builder.gep(X, [builder.add(at, _I64(lane))]), locality=3)
                    if not labels:
                        prefetch_line(builder, builder.gep(Y, [builder.add(at, _I64(lane))]), locality=3)
                if labels:
                    prefetch_line(builder, builder.gep(Y, [at]), locality=3)
                quad(i)
            start = builder.add(part, builder.mul(quads, _I64(64)))
        full = builder.sdiv(builder.sub(end, start), _I64(nl))
        with cgutils.for_range(builder, full) as loop:
            i = builder.add(start, builder.mul(loop.index, _I64(nl)))
            at = builder.add(i, _I64(ahead))  # a line of x and one of y, into L1, before hi
            with builder.if_then(builder.icmp_signed("<", at, hi), likely=True):
                prefetch_line(builder, builder.gep(X, [at]), locality=3)
                if labels:  # a line of labels holds 64 rows: asked for at one step in 64 rows
                    first = builder.icmp_unsigned("<", builder.and_(i, _I64(63)), _I64(nl))
                    with builder.if_then(first):
                        prefetch_line(builder, builder.gep(Y, [at]), locality=3)
                else:
                    prefetch_line(builder, builder.gep(Y, [at]), locality=3)
            xv = _load_vec(builder, builder.gep(X, [i]), vt)
            step(xv, targets(i, None), None)
        i = builder.add(start, builder.mul(full, _I64(nl)))
        with builder.if_then(builder.icmp_signed("<", i, end)):
            live = _lane_mask(builder, builder.sub(end, i), nl)
            xv = _masked_load(builder, builder.gep(X, [i]), live, vt)
            step(xv, targets(i, live), live)
        accumulate(p_exp, take_exponent(p_prod))
        if f32:  # the part's float32 sums into the float64 totals
            loss, loss_pos, dz, g = (builder.load(slot) for slot in part_sums)
            for total, value in zip(totals, (builder.fadd(loss, loss_pos), dz, g), strict=True):
                accumulate(total, widen_sum(value))
            for slot in part_sums:
                builder.store(zero, slot)

    # The rows before x's first 64-byte line boundary are a part of their own, so that
    # every later vector of x is a whole aligned line (fgd_part_end in
    # kernels/fastgd_one_feature.c, which says why).
    address = builder.ptrtoint(builder.gep(X, [lo]), _I64)
    head = builder.udiv(builder.and_(builder.neg(address), _I64(63)), _I64(itemsize))
    rows = builder.sub(hi, lo)
    head = builder.select(builder.icmp_signed("<", head, rows), head, rows)
    has_head = builder.zext(builder.icmp_signed(">", head, _I64(0)), _I64)
    aligned = builder.add(lo, head)
    parts = builder.add(
        has_head, builder.sdiv(builder.add(builder.sub(hi, aligned), _I64(part_rows - 1)), _I64(part_rows))
    )
    with cgutils.for_range(builder, parts) as loop:
        k = builder.sub(loop.index, has_head)  # -1: the head
        is_head = builder.icmp_signed("<", k, _I64(0))
        part = builder.select(is_head, lo, builder.add(aligned, builder.mul(k, _I64(part_rows))))
        end = builder.add(part, _I64(part_rows))
        end = builder.select(is_head, aligned, builder.select(builder.icmp_signed("<", end, hi), end, hi))
        part_rows_from(part, end)

    if f32:
        terms, dz, g = (builder.load(t) for t in totals)
        mantissas = builder.fpext(builder.load(p_prod), dvt)
    else:
        loss, loss_pos, dz, g = (builder.load(t) for t in part_sums)
        terms = builder.fadd(loss, loss_pos)  # in units of ln 2
        mantissas = builder.load(p_prod)
    # sum log1p(e^-|z|) = -log(prod (1 - q)): ln 2 times the exponents taken out, and the
    # log of the lanes' mantissas multiplied (eight or sixteen in [1, 2), below 2**16)
    log = builder.module.declare_intrinsic("llvm.log", [f64])
    terms = _fold_lanes(builder, terms, builder.fadd)
    exponents = builder.fmul(f64(LN2), _fold_lanes(builder, builder.load(p_exp), builder.fadd))
    loss_sum = builder.fsub(
        builder.fsub(terms if f32 else builder.fmul(f64(LN2), terms), exponents),
        builder.call(log, [_fold_lanes(builder, mantissas, builder.fmul)]),
    )
    return context.make_tuple(
        builder,
        sig.return_type,
        [loss_sum, _fold_lanes(builder, g, builder.fadd), _fold_lanes(builder, dz, builder.fadd)],
    )


@intrinsic
def logistic_one_feature(typingctx, x, y, lo, hi, w0, b):
    """Unweighted logistic for d = 1 on rows lo..hi of x and y (1-d, float64 or float32;
    y in x's dtype or uint8 labels), z = x w0 + b: (sum l, sum (sigmoid(z) - y) x,
    sum (sigmoid(z) - y)), float64. The steps of kernels/fastgd_one_feature.c as LLVM
    vector code, the scores in units of ln 2: eight float64 rows a vector (e^-|z| as a
    Pade ratio; the log1p terms as the logarithm of a product) or sixteen float32 rows in
    float32 arithmetic (sums over a part, then float64)."""
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (x, y)):
        return None
    if x.dtype not in (types.float32, types.float64) or y.dtype not in (x.dtype, types.uint8):
        return None
    return types.UniTuple(types.float64, 3)(x, y, lo, hi, w0, b), _logistic_one_feature_codegen


def _mse_one_feature_codegen(context, builder, sig, args):
    x_ty, y_ty, sw_ty = sig.args[:3]
    x_arr, y_arr, sw_arr, lo, hi, w0, b, has_sw = _indices_as_intp(context, builder, sig, args)
    f32 = x_ty.dtype == types.float32
    ft = ir.FloatType() if f32 else ir.DoubleType()
    nl = 16 if f32 else 8  # a 64-byte line of x a step
    vt, dvt = _vec(ft, nl), _vec(ir.DoubleType(), nl)
    X, _ = _array(context, builder, x_ty, x_arr)
    Y, _ = _array(context, builder, y_ty, y_arr)
    SW, _ = _array(context, builder, sw_ty, sw_arr)
    w_v = _splat(builder, context.cast(builder, w0, sig.args[5], types.float64), dvt)
    b_v = _splat(builder, context.cast(builder, b, sig.args[6], types.float64), dvt)
    zero = ir.Constant(dvt, None)
    sums = [cgutils.alloca_once_value(builder, zero) for _ in range(3)]  # loss, dz, g
    ahead = ONE_FEATURE_AHEAD_BYTES // (4 if f32 else 8)

    def widen(v):
        return builder.fpext(v, dvt) if f32 else v

    def step(i, live, weighted):
        """Rows i .. i + nl; live (None: all) marks those that count."""
        if live is None:
            xv, yv = (_load_vec(builder, builder.gep(A, [i]), vt) for A in (X, Y))
            sv = _load_vec(builder, builder.gep(SW, [i]), vt) if weighted else None
        else:
            xv, yv = (_masked_load(builder, builder.gep(A, [i]), live, vt) for A in (X, Y))
            sv = _masked_load(builder, builder.gep(SW, [i]), live, vt) if weighted else None
        xd = widen(xv)
        r = builder.fsub(_fma(builder, xd, w_v, b_v), widen(yv))
        if live is not None:
            r = builder.select(live, r, zero)
        sr = builder.fmul(widen(sv), r) if weighted else r
        loss, dz, g = sums
        builder.store(_fma(builder, sr, r, builder.load(loss)), loss)
        builder.store(builder.fadd(builder.load(dz), sr), dz)
        builder.store(_fma(builder, sr, xd, builder.load(g)), g)

    def rows(weighted):
        full = builder.sdiv(builder.sub(hi, lo), _I64(nl))
        with cgutils.for_range(builder, full) as loop:
            i = builder.add(lo, builder.mul(loop.index, _I64(nl)))
            at = builder.add(i, _I64(ahead))  # a line of each array, into L1, before hi
            with builder.if_then(builder.icmp_signed("<", at, hi), likely=True):
                for A in (X, Y, SW) if weighted else (X, Y):
                    prefetch_line(builder, builder.gep(A, [at]), locality=3)
            step(i, None, weighted)
        i = builder.add(lo, builder.mul(full, _I64(nl)))
        with builder.if_then(builder.icmp_signed("<", i, hi)):
            step(i, _lane_mask(builder, builder.sub(hi, i), nl), weighted)

    weighted = builder.icmp_unsigned("!=", has_sw, ir.Constant(has_sw.type, 0))
    with builder.if_else(weighted) as (then, otherwise):
        with then:
            rows(True)
        with otherwise:
            rows(False)

    loss, dz, g = (_fold_lanes(builder, builder.load(v)) for v in sums)
    two = ir.DoubleType()(2.0)
    return context.make_tuple(builder, sig.return_type, [loss, builder.fmul(two, g), builder.fmul(two, dz)])


@intrinsic
def mse_one_feature(typingctx, x, y, sw, lo, hi, w0, b, has_sw):
    """mse for d = 1 on rows lo..hi of x and y (1-d, float64 or float32), weighted by sw
    where has_sw: (sum s r^2, 2 sum s r x, 2 sum s r) with r = x w0 + b - y, float64
    (float32 values widened). One 64-byte line of x a step, each step asking for the lines
    ONE_FEATURE_AHEAD_BYTES ahead (kernels/fastgd_one_feature.c's fgd_mse_one_feature)."""
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in (x, y, sw)):
        return None
    if x.dtype not in (types.float32, types.float64) or y.dtype != x.dtype or sw.dtype != x.dtype:
        return None
    return types.UniTuple(types.float64, 3)(x, y, sw, lo, hi, w0, b, has_sw), _mse_one_feature_codegen


#: The row lengths fused_rows_part can take, in 512-bit vectors of X's dtype (float64 9 to
#: 128 values, float32 17 to 256); which of them numba gives it is numba.FUSED_VECTORS_MAX.
FUSED_VECTORS = range(2, 17)
#: AMD Zen (LLVM's host CPU znver*): fused_rows_part takes its steps as
#: kernels/fastgd_fused_rows.c does there (FGD_ZEN): the scores one row after
#: another, the gradient update reading the rows again from X (no stack array), no
#: requests for lines ahead.
FUSED_ZEN = llvm_binding.get_host_cpu_name().startswith("znver")


def _fabs(builder, x):
    return builder.call(_intrinsic(builder, "llvm.fabs", ir.FunctionType(x.type, [x.type]), x.type), [x])


def _exp_ratio_nonpositive(builder, x):
    """(num, den) with exp(x) = num / den for x <= 0 on a float64 vector, as
    _vecmath.exp_ratio_nonpositive: the Pade [6/6] ratio of exp(r) times 2**k."""
    vt = x.type

    def const(c, t=vt):
        return ir.Constant(t, [c] * t.count)

    km, _, r = _exp_reduce(builder, x, False)
    s2 = builder.fmul(r, r)
    even = const(PADE_EVEN[0])
    for c in PADE_EVEN[1:]:
        even = _fma(builder, even, s2, const(c))
    odd = const(PADE_ODD[0])
    for c in PADE_ODD[1:]:
        odd = _fma(builder, odd, s2, const(c))
    odd = builder.fmul(odd, r)
    ivt = _vec(_I64, vt.count)
    bits = builder.shl(builder.add(builder.bitcast(km, ivt), const(1023, ivt)), const(52, ivt))
    return builder.fmul(builder.fadd(even, odd), builder.bitcast(bits, vt)), builder.fsub(even, odd)


def _fused_rows_codegen(context, builder, sig, args):
    x_ty, y_ty, w_ty, b_ty, _, _, _, _, g_ty, acc_ty = sig.args
    values = _indices_as_intp(context, builder, sig, args)
    X_arr, y_arr, w_arr, b, i0, i1, shift, logistic, g_arr, acc_arr = values
    f32 = x_ty.dtype == types.float32
    ft, dt = (ir.FloatType() if f32 else ir.DoubleType()), ir.DoubleType()
    nl = 16 if f32 else 8  # lanes of a 512-bit vector
    vt, dvt, v4 = _vec(ft, nl), _vec(dt, nl), _vec(dt, 4)
    X, (_, d) = _array(context, builder, x_ty, X_arr)
    Y, _ = _array(context, builder, y_ty, y_arr)
    labels = y_ty.dtype == types.uint8  # logistic y as one byte a row
    W, _ = _array(context, builder, w_ty, w_arr)
    G, _ = _array(context, builder, g_ty, g_arr)
    ACC, _ = _array(context, builder, acc_ty, acc_arr)
    b = context.cast(builder, b, b_ty, types.float64)
    zero, zero4, one4 = ir.Constant(vt, None), ir.Constant(v4, None), ir.Constant(v4, [1.0] * 4)
    # The row's vectors, and the loops over them, at run time: with their count a constant
    # LLVM unrolled the loops, held the rows in registers and moved a step's requests for
    # lines to its end, in one burst (2M x 64 float32 logistic 0.79 against 0.84 of the read)
    nv = builder.sdiv(builder.add(d, _I64(nl - 1)), _I64(nl))
    # A row's windows, from `shift` values before its start: nv, or nv + 1 where shifted
    nw = builder.sdiv(builder.add(builder.add(shift, d), _I64(nl - 1)), _I64(nl))
    last_v = builder.sub(nw, _I64(1))
    end = builder.sub(builder.add(shift, d), builder.mul(last_v, _I64(nl)))
    last = _lane_mask(builder, end, nl)  # the last window's lanes in the row
    all_lanes = ir.Constant(_vec(_I1, nl), [1] * nl)
    first = builder.not_(_lane_mask(builder, shift, nl))  # the first window's
    first_last = builder.and_(first, last)  # a row of one window

    def window_mask(v):
        """The lanes of window v in the row."""
        is_first, is_last = builder.icmp_signed("==", v, _I64(0)), builder.icmp_signed("==", v, last_v)
        ends = builder.select(is_first, first_last, last)
        return builder.select(is_last, ends, builder.select(is_first, first, all_lanes))

    # 2 KB ahead for rows of one or two vectors, else 3 KB (FGD_FUSED_AHEAD_BYTES)
    itemsize = 4 if f32 else 8
    ahead = builder.select(
        builder.icmp_signed(">", nv, _I64(2)), _I64(3072 // itemsize), _I64(2048 // itemsize)
    )
    A = cgutils.alloca_once(builder, vt, size=4 * (max(FUSED_VECTORS) + 1))  # a step's rows, A[q nw + v]
    Gv = cgutils.alloca_once(builder, vt, size=max(FUSED_VECTORS) + 1)  # the part's gradient sums
    with cgutils.for_range(builder, nw) as loop:
        builder.store(zero, builder.gep(Gv, [loop.index]))
    sums = (zero4, zero4, one4, one4)  # loss terms, residuals, log1p factors as t / den
    vloss, vdz, vprod, vden = (cgutils.alloca_once_value(builder, c) for c in sums)

    def quad(values):
        out = zero4
        for q, value in enumerate(values):
            out = builder.insert_element(out, builder.fpext(value, dt) if f32 else value, _I32(q))
        return out

    def step(i, R, is_logistic):
        """Rows i .. i + R (R = 4, or 1 for the rows left over)."""
        # each row from `shift` values before its start
        rows = [
            builder.gep(X, [builder.sub(builder.mul(builder.add(i, _I64(q)), d), shift)]) for q in range(R)
        ]
        sums = [cgutils.alloca_once_value(builder, zero) for _ in range(R)]

        def score_terms(q, v, wv, mask):
            p = builder.gep(rows[q], [builder.mul(v, _I64(nl))])
            if not FUSED_ZEN:
                prefetch_line(builder, builder.gep(p, [ahead]), locality=3)
            a = _masked_load(builder, p, mask, vt)
            if not FUSED_ZEN:  # on Zen the update reads the rows again from X
                builder.store(a, builder.gep(A, [builder.add(builder.mul(_I64(q), nw), v)]))
            builder.store(_fma(builder, a, wv, builder.load(sums[q])), sums[q])

        def vector(v):
            return window_mask(v), _load_vec(builder, builder.gep(W, [builder.mul(v, _I64(nl))]), vt)

        if FUSED_ZEN:  # one row after another
            for q in range(R):
                with cgutils.for_range(builder, nw) as loop:
                    mask, wv = vector(loop.index)
                    score_terms(q, loop.index, wv, mask)
        else:  # the four rows' first vectors, then their second ...: each loaded once
            with cgutils.for_range(builder, nw) as loop:
                mask, wv = vector(loop.index)
                for q in range(R):
                    score_terms(q, loop.index, wv, mask)
        z = builder.fadd(quad([_fold_lanes(builder, builder.load(s)) for s in sums]), _splat(builder, b, v4))
        y = [builder.load(builder.gep(Y, [builder.add(i, _I64(q))])) for q in range(R)]
        y = quad([builder.uitofp(v, ft) for v in y] if labels else y)
        live = ir.Constant(_vec(_I1, 4), [q < R for q in range(4)])
        if is_logistic:  # sigmoid(z) - y, max(z, 0) - y z, and the factor 1 + e^-|z|
            num, den = _exp_ratio_nonpositive(builder, builder.fsub(zero4, _fabs(builder, z)))
            t = builder.fadd(num, den)  # e^-|z| = num / den: 1 + e^-|z| = t / den
            top = builder.select(builder.fcmp_ordered(">=", z, zero4), den, num)
            r = builder.fsub(builder.fdiv(top, t), y)
            positive = builder.select(builder.fcmp_ordered(">", z, zero4), z, zero4)
            terms = builder.fsub(positive, builder.fmul(y, z))
            builder.store(builder.fmul(builder.load(vprod), builder.select(live, t, one4)), vprod)
            builder.store(builder.fmul(builder.load(vden), builder.select(live, den, one4)), vden)
        else:
            r = builder.fsub(z, y)
            terms = builder.fmul(r, r)
        r = builder.select(live, r, zero4)
        builder.store(builder.fadd(builder.load(vloss), builder.select(live, terms, zero4)), vloss)
        builder.store(builder.fadd(builder.load(vdz), r), vdz)
        rq = [builder.extract_element(r, _I32(q)) for q in range(R)]
        rv = [_splat(builder, builder.fptrunc(x, ft) if f32 else x, vt) for x in rq]
        with cgutils.for_range(builder, nw) as loop:  # the gradient terms, from the rows in L1
            v = loop.index
            gp = builder.gep(Gv, [v])
            g = builder.load(gp)
            if FUSED_ZEN:
                mask = window_mask(v)
            for q in range(R):
                if FUSED_ZEN:
                    a = _masked_load(builder, builder.gep(rows[q], [builder.mul(v, _I64(nl))]), mask, vt)
                else:
                    a = builder.load(builder.gep(A, [builder.add(builder.mul(_I64(q), nw), v)]))
                g = _fma(builder, rv[q], a, g)
            builder.store(g, gp)

    def rows(is_logistic):
        full = builder.sdiv(builder.sub(i1, i0), _I64(4))
        with cgutils.for_range(builder, full) as loop:
            step(builder.add(i0, builder.mul(loop.index, _I64(4))), 4, is_logistic)
        rest = builder.add(i0, builder.mul(full, _I64(4)))
        with cgutils.for_range(builder, builder.sub(i1, rest)) as loop:
            step(builder.add(rest, loop.index), 1, is_logistic)

    with builder.if_else(builder.icmp_unsigned("!=", logistic, ir.Constant(logistic.type, 0))) as (
        then,
        otherwise,
    ):
        with then:
            rows(True)
        with otherwise:
            rows(False)
    # the part's sums into g (window v's lanes at g[v nl - shift ...]) and acc
    with cgutils.for_range(builder, nw) as loop:
        v = loop.index
        gv = builder.load(builder.gep(Gv, [v]))
        ptr = builder.gep(G, [builder.sub(builder.mul(v, _I64(nl)), shift)])
        mask = window_mask(v)
        total = builder.fadd(_masked_load(builder, ptr, mask, dvt), builder.fpext(gv, dvt) if f32 else gv)
        _masked_store(builder, total, ptr, mask)
    for slot, vec in ((0, vloss), (1, vdz)):
        ptr = builder.gep(ACC, [_I64(slot)])
        builder.store(builder.fadd(builder.load(ptr), _fold_lanes(builder, builder.load(vec))), ptr)

    def product(vec):
        lanes = [builder.extract_element(builder.load(vec), _I32(q)) for q in range(4)]
        return builder.fmul(builder.fmul(lanes[0], lanes[1]), builder.fmul(lanes[2], lanes[3]))

    ptr = builder.gep(ACC, [_I64(2)])
    builder.store(builder.fmul(builder.load(ptr), builder.fdiv(product(vprod), product(vden))), ptr)
    return context.get_dummy_value()


@intrinsic
def fused_rows_part(typingctx, X, y, w, b, i0, i1, shift, logistic, g, acc):
    """Unweighted mse or logistic (``logistic`` != 0) on rows i0..i1 (a part, at most 64
    rows as numba.FUSED_PART_ROWS) of X (n, d) with rows of FUSED_VECTORS 512-bit vectors, float64 or
    float32, as kernels/fastgd_fused_rows.c: four rows a step, each row's vectors loaded
    once (through a small stack array) for its score (in X's dtype) and, after the four
    residuals (one float64 vector), for its gradient terms, summed in X's dtype over the
    part and then added into g (float64, d). acc (float64, 3): [0] += the loss terms (mse
    (z - y)^2; logistic max(z, 0) - y z, with [2] *= the product of the factors 1 +
    e^-|z|, whose logarithm is the rest), [1] += the residuals (mse z - y: the caller
    doubles mse's g and [1]). y: X's dtype, or uint8 labels. Each row is read in windows of
    one vector from ``shift`` values before its start (0 <= shift < a vector's lanes: where
    rows are whole 64-byte lines and X starts shift values past a line's start, each window
    is then one line), the first and last masked to the row. w: X's dtype, at shift in
    zeros for whole vectors past shift + d."""
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in (X, y, w, g, acc)):
        return None
    if not isinstance(shift, types.Integer):
        return None
    if (
        X.dtype not in (types.float32, types.float64)
        or X.ndim != 2
        or y.dtype not in (X.dtype, types.uint8)
        or w.dtype != X.dtype
    ):
        return None
    if g.dtype != types.float64 or acc.dtype != types.float64:
        return None
    return types.void(X, y, w, b, i0, i1, shift, logistic, g, acc), _fused_rows_codegen
