// Elementwise ops, one thread per output element (grid-stride):
// binary_<a>_<b>_<o>: add (kind 0) and mul (kind 1), b broadcast through its view;
// unary_<x>_<o>: scale (0), silu (1), gelu (2), swiglu (3, fused [gate | up]), cast (4).
#include "compat.h"
#include "dtypes.h"

template <int A, int B, int O>
__device__ void binary_impl(const void* a, View va, const void* b, View vb, void* o, View vo,
                            u64 n, int kind) {
    for (u64 e = blockIdx.x * (u64)blockDim.x + threadIdx.x; e < n; e += (u64)gridDim.x * blockDim.x) {
        const float x = load<A>(a, va, at(va, e)), y = load<B>(b, vb, at(vb, e));
        store<O>(o, vo, at(vo, e), kind == 0 ? x + y : x * y);
    }
}

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float gelu(float x) {
    const float u = 0.7978845608f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}

template <int X, int O>
__device__ void unary_impl(const void* x, View vx, void* o, View vo, u64 n, int kind, float factor,
                           u64 half) {
    for (u64 e = blockIdx.x * (u64)blockDim.x + threadIdx.x; e < n; e += (u64)gridDim.x * blockDim.x) {
        float r;
        if (kind == 3) {
            const u64 row = e / half, c = e % half;
            r = silu(load<X>(x, vx, at(vx, row * 2 * half + c))) * load<X>(x, vx, at(vx, row * 2 * half + c + half));
        } else {
            const float v = load<X>(x, vx, at(vx, e));
            r = kind == 0 ? v * factor : kind == 1 ? silu(v) : kind == 2 ? gelu(v) : v;
        }
        store<O>(o, vo, at(vo, e), r);
    }
}

#define BINARY(B, A, O)                                                                            \
    extern "C" __global__ void binary_##A##_##B##_##O(const void* a, View va, const void* b,        \
                                                      View vb, void* o, View vo, u64 n, int kind) { \
        binary_impl<DT_##A, DT_##B, DT_##O>(a, va, b, vb, o, vo, n, kind);                         \
    }
#define BINARY_B(A, O) FLOATS_3(BINARY, A, O)
#define BINARY_A(O, _) FLOATS_2(BINARY_B, O)
FLOATS_1(BINARY_A, _)

#define UNARY(X, O)                                                                                 \
    extern "C" __global__ void unary_##X##_##O(const void* x, View vx, void* o, View vo, u64 n,     \
                                               int kind, float factor, u64 half) {                  \
        unary_impl<DT_##X, DT_##O>(x, vx, o, vo, n, kind, factor, half);                           \
    }
#define UNARY_X(O, _) WEIGHTS_2(UNARY, O)
FLOATS_1(UNARY_X, _)
