"""LLVM vector code for the Numba softmax kernel's block products.

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
- :func:`panel_rows` -- a panel of the gradient update: Q classes by J vectors of columns,
  summed in registers over a block's rows.

The multiply-adds are ``llvm.fma``; the loops over columns and rows are LLVM loops whose
sums live in stack slots that LLVM turns into registers. Nothing here reads outside the
arrays: a tile's missing rows read its first row, and partial vectors are masked.
"""

import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

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


def _lane_mask(builder, count, n):
    """<n x i1>: lane l < count."""
    lanes = ir.Constant(_vec(_I64, n), list(range(n)))
    return builder.icmp_signed("<", lanes, _splat(builder, count, _vec(_I64, n)))


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


def _lane_sums8(builder, a):
    """A vector whose lane r is the sum of a[r]'s lanes (eight vectors of eight lanes)."""
    o = _transpose8(builder, a)
    s = o[0]
    for v in o[1:]:
        s = builder.fadd(s, v)
    return s


def _indices_as_intp(context, builder, sig, args):
    """The arguments, integers cast to intp (the code below computes in 64-bit integers)."""
    cast = context.cast
    pairs = zip(args, sig.args, strict=True)
    return [cast(builder, v, t, types.intp) if isinstance(t, types.Integer) else v for v, t in pairs]


def _array(context, builder, ty, value):
    a = context.make_array(ty)(context, builder, value)
    return a.data, cgutils.unpack_tuple(builder, a.shape)


def _prefetch(builder, ptr):
    i8p = ir.IntType(8).as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32])
    fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty=fnty)
    builder.call(fn, [builder.bitcast(ptr, i8p), _I32(0), _I32(2), _I32(1)])


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
    W, (_, ldw) = _array(context, builder, w_ty, w_arr)
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

    woff = builder.mul(c0, _I64(2)) if f32 else c0  # the group's first column in Wg

    def w_vector(col):  # the group's coefficients at column (float64) or pair (float32) col
        return _load_vec(builder, builder.gep(W, [builder.add(builder.mul(col, ldw), woff)]), vt)

    with cgutils.for_range(builder, blocks) as loop:
        j = builder.mul(loop.index, _I64(step))
        col0 = builder.sdiv(j, _I64(2)) if f32 else j
        wv = [w_vector(builder.add(col0, _I64(t))) for t in range(8)] if group else []
        wd = _load_vec(builder, builder.gep(wdot, [j]), vt) if dot else None
        for r in range(8):
            s = builder.add(builder.mul(loop.index, _I64(8)), _I64(r))
            with builder.if_then(builder.icmp_signed("<", s, pf_n), likely=False):
                _prefetch(builder, builder.gep(X, [builder.add(pf_at, builder.mul(s, per_line))]))
            if dot:
                xv = _load_vec(builder, builder.gep(rowp[r], [j]), vt)
                builder.store(_fma(builder, xv, wd, builder.load(dacc[r])), dacc[r])
            if group:
                a = builder.load(acc[r])
                for t in range(8):
                    a = _fma(builder, broadcast(rowp[r], builder.add(j, _I64(2 * t if f32 else t))), wv[t], a)
                builder.store(a, acc[r])
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
    a = [builder.load(p) for p in acc]
    if f32:  # eight classes by two columns: as eight float64 lanes, transposed, pairs summed
        dt = _vec(ir.DoubleType(), 8)
        o = _transpose8(builder, [builder.bitcast(v, dt) for v in a])
        cls = []
        for v in o:
            v = builder.bitcast(v, vt)
            s = builder.fadd(v, _shuffle(builder, v, v, [i ^ 1 for i in range(16)]))
            cls.append(_shuffle(builder, s, s, list(range(0, 16, 2))))
    else:
        cls = _transpose8(builder, a)
    for c in range(8 if group else 0):
        with builder.if_then(builder.icmp_signed("<", _I64(c), nq)):
            q = builder.add(c0, _I64(c))
            bq = builder.load(builder.gep(B, [q]))
            bq = builder.fptrunc(bq, ft) if f32 else bq
            ptr = builder.gep(Z, [builder.add(builder.mul(q, ldz), i0)])
            _masked_store(builder, builder.fadd(cls[c], _splat(builder, bq, ot)), ptr, rmask)
    if dot:
        da = [builder.load(p) for p in dacc]
        if f32:  # sixteen lanes to eight, then as float64
            da = [
                builder.fadd(
                    _shuffle(builder, v, v, list(range(8))), _shuffle(builder, v, v, list(range(8, 16)))
                )
                for v in da
            ]
        s = _lane_sums8(builder, da)
        bq = builder.load(builder.gep(B, [qd]))
        bq = builder.fptrunc(bq, ft) if f32 else bq
        ptr = builder.gep(Z, [builder.add(builder.mul(qd, ldz), i0)])
        _masked_store(builder, builder.fadd(s, _splat(builder, bq, ot)), ptr, rmask)
    return context.get_dummy_value()


@intrinsic
def score_group_tile(typingctx, X, r0, rows, Wg, c0, wdot, dot, group, ZT, i0, nq, qd, b, pf_at, pf_n):
    """With group a 1-tuple, ZT[c0 + c, i0 + r] = X[r0 + r] . (the group's coefficients of
    class c) + b[c0 + c] for r < rows (<= 8) and c < nq (<= 8); with dot a 1-tuple,
    ZT[qd, i0 + r] = X[r0 + r] . wdot + b[qd]. X (n, d) float64 or float32; Wg float64
    (d, 8 G) with the group's classes at columns c0 .. c0 + 7, or float32 by column pairs
    ((d + 1) // 2, 16 G): row p, column 2 c0 + 2 c + e holds class c's coefficient at
    column 2 p + e (0 past the last column); wdot (d,) in X's dtype; ZT (k, ldz) in X's
    dtype; b float64. Asks for pf_n cache lines of X from the flat element offset pf_at,
    one per row step."""
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in (X, Wg, wdot, ZT, b)):
        return None
    if X.dtype not in (types.float32, types.float64) or any(a.dtype != X.dtype for a in (Wg, wdot, ZT)):
        return None
    if not all(isinstance(t, types.BaseTuple) and len(t) <= 1 for t in (dot, group)):
        return None
    sig = types.void(X, r0, rows, Wg, c0, wdot, dot, group, ZT, i0, nq, qd, b, pf_at, pf_n)
    return sig, _score_group_tile_codegen


def _panel_rows_codegen(context, builder, sig, args):
    (x_ty, _, _, r_ty, _, q_ty, _, g_ty, _, _) = sig.args
    args = _indices_as_intp(context, builder, sig, args)
    (x_arr, start, m, r_arr, q0, _, j0, g_arr, pf_at, pf_lines) = args
    f32 = x_ty.dtype == types.float32
    ft = ir.FloatType() if f32 else ir.DoubleType()
    nl = 16 if f32 else 8
    vt = _vec(ft, nl)
    zero = ir.Constant(vt, None)
    Q = len(q_ty)
    J = panel_vectors.py_func(Q)
    X, (_, d) = _array(context, builder, x_ty, x_arr)
    R, (_, ldr) = _array(context, builder, r_ty, r_arr)
    Gb, _ = _array(context, builder, g_ty, g_arr)
    left = builder.sub(d, j0)  # columns from j0 on
    masks = [_lane_mask(builder, builder.sub(left, _I64(u * nl)), nl) for u in range(J)]
    acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(J)] for _ in range(Q)]
    per_line = _I64(64 // (4 if f32 else 8))
    # Lines per row: pf_lines spread over the m rows (m > 0).
    per_row = builder.sdiv(
        builder.add(pf_lines, builder.sub(m, _I64(1))),
        builder.select(builder.icmp_signed(">", m, _I64(0)), m, _I64(1)),
    )
    with cgutils.for_range(builder, m) as loop:
        i = loop.index
        row = builder.gep(X, [builder.add(builder.mul(builder.add(start, i), d), j0)])
        v = [_masked_load(builder, builder.gep(row, [_I64(u * nl)]), masks[u], vt) for u in range(J)]
        with cgutils.for_range(builder, per_row) as ask:
            line = builder.add(builder.mul(i, per_row), ask.index)
            with builder.if_then(builder.icmp_signed("<", line, pf_lines), likely=True):
                _prefetch(builder, builder.gep(X, [builder.add(pf_at, builder.mul(line, per_line))]))
        for q in range(Q):
            r = builder.load(builder.gep(R, [builder.add(builder.mul(builder.add(q0, _I64(q)), ldr), i)]))
            c = _splat(builder, r, vt)
            for u in range(J):
                builder.store(_fma(builder, c, v[u], builder.load(acc[q][u])), acc[q][u])
    for q in range(Q):
        grow = builder.gep(Gb, [builder.add(builder.mul(builder.add(q0, _I64(q)), d), j0)])
        for u in range(J):
            ptr = builder.gep(grow, [_I64(u * nl)])
            total = builder.fadd(_masked_load(builder, ptr, masks[u], vt), builder.load(acc[q][u]))
            _masked_store(builder, total, ptr, masks[u])
    return context.get_dummy_value()


@numba.njit(cache=True)
def panel_vectors(n_classes):
    """Vectors of columns per gradient panel of n_classes classes (as FGD_PANEL_VECS in
    kernels/fastgd_tiles_impl.h): as many as keep the sums within the registers."""
    return 4 if n_classes <= 6 else 2


@intrinsic
def panel_rows(typingctx, X, start, m, RT, q0, classes, j0, Gb, pf_at, pf_lines):
    """Gb[q0 + q, j0 + c] += sum_{i < m} RT[q0 + q, i] X[start + i, j0 + c] for q < Q =
    len(classes) (a tuple: Q is a compile-time constant) and the panel_vectors(Q) vectors
    of columns from j0 (eight float64 or sixteen float32 each; columns past d masked): each
    row's vectors of X loaded once for the Q classes, the Q J sums in registers over the m
    rows, added to Gb (in X's dtype) once. Asks for pf_lines cache lines of X from the flat
    element offset pf_at on the way, an equal share in each row."""
    if not all(isinstance(a, types.Array) and a.layout == "C" for a in (X, RT, Gb)):
        return None
    if X.dtype not in (types.float32, types.float64) or RT.dtype != X.dtype or Gb.dtype != X.dtype:
        return None
    if not isinstance(classes, types.BaseTuple) or not 1 <= len(classes) <= 12:
        return None
    return types.void(X, start, m, RT, q0, classes, j0, Gb, pf_at, pf_lines), _panel_rows_codegen
