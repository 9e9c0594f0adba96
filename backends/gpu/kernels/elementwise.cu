// Elementwise ops, one thread per output element (grid-stride):
// binary_<a>_<b>_<o>: add (kind 0) and mul (kind 1), b broadcast through its view;
// unary_<x>_<o>: scale (0), silu (1), gelu (2), swiglu (3, fused [gate | up]), cast (4).
#include "compat.h"

DEVICE void binary_impl(const int A, const int B, const int O, IN a, View va, IN b, View vb,
                        OUT o, View vo, u64 n, int kind) {
    GRID_STRIDE(e, n) {
        const float x = load(A, a, va, at(va, e)), y = load(B, b, vb, at(vb, e));
        store(O, o, vo, at(vo, e), kind == 0 ? x + y : x * y);
    }
}

DEVICE float gelu(float x) {
    const float u = 0.7978845608f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}

DEVICE void unary_impl(const int X, const int O, IN x, View vx, OUT o, View vo, u64 n, int kind,
                       float factor, u64 half_cols) {
    GRID_STRIDE(e, n) {
        float r;
        if (kind == 3) {
            const u64 row = e / half_cols, c = e % half_cols;
            r = silu(load(X, x, vx, at(vx, row * 2 * half_cols + c))) *
                load(X, x, vx, at(vx, row * 2 * half_cols + c + half_cols));
        } else {
            const float v = load(X, x, vx, at(vx, e));
            r = kind == 0 ? v * factor : kind == 1 ? silu(v) : kind == 2 ? gelu(v) : v;
        }
        store(O, o, vo, at(vo, e), r);
    }
}

#define BINARY(B, A, O)                                                                            \
    KERNEL(binary_##A##_##B##_##O)(IN a, View va, IN b, View vb, OUT o, View vo, u64 n, int kind) { \
        binary_impl(DT_##A, DT_##B, DT_##O, a, va, b, vb, o, vo, n, kind);                         \
    }
#define BINARY_B(A, O) FLOATS_3(BINARY, A, O)
#define BINARY_A(O, _) FLOATS_2(BINARY_B, O)
FLOATS_1(BINARY_A, _)

#define UNARY(X, O)                                                                                \
    KERNEL(unary_##X##_##O)(IN x, View vx, OUT o, View vo, u64 n, int kind, float factor,          \
                            u64 half_cols) {                                                       \
        unary_impl(DT_##X, DT_##O, x, vx, o, vo, n, kind, factor, half_cols);                      \
    }
#define UNARY_X(O, _) WEIGHTS_2(UNARY, O)
FLOATS_1(UNARY_X, _)
