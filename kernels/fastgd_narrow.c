/* The narrow-row kernels declared in fastgd_narrow.h (see there); fastgd_narrow_impl.h
 * holds the loops, included once per dtype. */
#include "fastgd_narrow.h"

#include <math.h>

#include "fastgd_vecmath.h"

/* Rows per product of the unweighted logistic loop (as PADE_ROWS in cython_kernels.pyx):
 * each factor num + den <= 2.4, each den in [0.84, 1.19]; their ratio, the product of
 * 1 + e, is at most 2**256, and the running product is folded into a logarithm when it
 * passes 1e150. */
#define FGD_NARROW_PRODUCT_ROWS 256

#if defined(__GNUC__)
#define FGD_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FGD_ALWAYS_INLINE inline
#endif

/* The logistic loop over rows in one piece for these d, in three for the others: gcc
 * (12) does not vectorise the one loop at d = 5, 6, 7 (it finds no vector type for the
 * loads of five to seven interleaved columns beside the exponential, though it does in
 * mse's loop and in a loop of scores alone). In a C harness, float64, of the read: one
 * loop d = 2 0.64, 4 0.75, 8 0.77 (d = 5-7: 0.20-0.23); three loops d = 2 0.62, 4 0.71,
 * 5-7 0.55-0.61, 8 0.64. */
#define FGD_NARROW_FUSED(d) ((d) <= 4 || (d) == 8)

/* The cases d = 2 .. FGD_NARROW_D_MAX of a switch on d: each runs the statement given (in
 * which D is that d, a compile-time constant) and returns 1. */
#define FGD_NARROW_CASE(n, ...) \
    case n: {                   \
        enum { D = n };         \
        __VA_ARGS__;            \
        return 1;               \
    }
#define FGD_NARROW_CASES(...)                                                                       \
    FGD_NARROW_CASE(2, __VA_ARGS__) FGD_NARROW_CASE(3, __VA_ARGS__) FGD_NARROW_CASE(4, __VA_ARGS__) \
    FGD_NARROW_CASE(5, __VA_ARGS__) FGD_NARROW_CASE(6, __VA_ARGS__) FGD_NARROW_CASE(7, __VA_ARGS__) \
    FGD_NARROW_CASE(8, __VA_ARGS__)

#define FGD_T double
#define FGD_NAME(name) name##_d
#include "fastgd_narrow_impl.h"
#undef FGD_T
#undef FGD_NAME

#define FGD_T float
#define FGD_NAME(name) name##_f
#include "fastgd_narrow_impl.h"
#undef FGD_T
#undef FGD_NAME
