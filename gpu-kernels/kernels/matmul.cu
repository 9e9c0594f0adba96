// Products.
// matvec_<x>_<w>_<o>: y = x·Wᵀ (+ bias) for Q8_0/Q4_0 weights and few rows:
//   one warp per output; each lane takes whole 32-value blocks, quantizes the
//   block's activations to int8 with their own scale (as ggml does) and
//   multiplies with four-way int8 dot products.
// product_<a>_<b>_<o>: o[b,m,n] = Σ_k a[b,m,k]·bm[b,k,n] (+ bias[n]) with any
//   element strides and dtypes (quantized weights decoded in the load), in
//   16×16 tiles through shared memory: mat_mul of float weights or many rows,
//   and batched_mat_mul.
// The bias dtype is a run-time argument (bias_dt), read once per output.
#include "compat.h"
#include "dtypes.h"

template <int X, int W, int O>
__device__ void matvec_impl(const void* x, View vx, const void* w, View vw, const void* bias,
                            View vbias, int bias_dt, void* o, View vo, u32 m_rows, u32 n, u32 k,
                            int has_bias) {
    const u32 warps = blockDim.x / GLMHAL_WARP;
    const u32 j = blockIdx.x * warps + threadIdx.x / GLMHAL_WARP;
    const u32 row = blockIdx.y;
    const u32 lane = threadIdx.x % GLMHAL_WARP;
    if (j >= n || row >= m_rows) return;
    const u32 wbytes = W == DT_Q8_0 ? 34u : 18u;
    // Weight rows are whole blocks apart (s2 elements).
    const u8* wrow = (const u8*)w + vw.offset + (u64)j * (vw.s2 / 32) * wbytes;
    float acc = 0.0f;
    for (u32 blk = lane; blk < k / 32; blk += GLMHAL_WARP) {
        float xs[32];
        float amax = 0.0f;
        for (int q = 0; q < 32; q++) {
            xs[q] = load<X>(x, vx, (u64)row * vx.s2 + (u64)(blk * 32 + q) * vx.col_stride);
            amax = fmaxf(amax, fabsf(xs[q]));
        }
        const float dx = amax / 127.0f, ix = dx != 0.0f ? 1.0f / dx : 0.0f;
        const u8* b = wrow + (u64)blk * wbytes;
        const float dw = f16_to_f32((u32)b[0] | ((u32)b[1] << 8));
        i32 sum = 0;
        for (int q = 0; q < 32; q += 4) {
            i32 xq = 0, wq = 0;
            for (int t = 0; t < 4; t++) {
                const int jj = q + t;
                const i32 xv = (i32)rintf(xs[jj] * ix);
                const i32 wv = W == DT_Q8_0 ? (i32)(i8)b[2 + jj]
                                            : (i32)(jj < 16 ? (b[2 + jj] & 15) : (b[2 + jj - 16] >> 4)) - 8;
                xq |= (xv & 0xff) << (8 * t);
                wq |= (wv & 0xff) << (8 * t);
            }
            sum = dot4(xq, wq, sum);
        }
        acc += dx * dw * (float)sum;
    }
    acc = warp_sum(acc);
    if (lane == 0) {
        if (has_bias) acc += load_any(bias, vbias, at(vbias, j), bias_dt);
        store<O>(o, vo, (u64)row * vo.s2 + (u64)j * vo.col_stride, acc);
    }
}

struct Strides {
    u64 a_b, a_m, a_k, b_b, b_k, b_n, o_b, o_m, o_n;
};

template <int A, int B, int O>
__device__ void product_impl(const void* a, View va, const void* bm, View vb, const void* bias,
                             View vbias, int bias_dt, void* o, View vo, u32 m, u32 n, u32 k,
                             Strides s, int has_bias) {
    __shared__ float ta[16][17];
    __shared__ float tb[16][17];
    const u32 bi = blockIdx.z, tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    const u32 row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx;
    float acc = 0.0f;
    for (u32 t = 0; t < k; t += 16) {
        const u32 ka = t + tx, kb = t + ty;
        ta[ty][tx] = (row < m && ka < k) ? load<A>(a, va, bi * s.a_b + row * s.a_m + ka * s.a_k) : 0.0f;
        tb[ty][tx] = (col < n && kb < k) ? load<B>(bm, vb, bi * s.b_b + kb * s.b_k + col * s.b_n) : 0.0f;
        __syncthreads();
        for (int q = 0; q < 16; q++) acc += ta[ty][q] * tb[q][tx];
        __syncthreads();
    }
    if (row < m && col < n) {
        if (has_bias) acc += load_any(bias, vbias, at(vbias, col), bias_dt);
        store<O>(o, vo, bi * s.o_b + row * s.o_m + col * s.o_n, acc);
    }
}

#define MATVEC(W, X, O)                                                                            \
    extern "C" __global__ void matvec_##X##_##W##_##O(                                             \
        const void* x, View vx, const void* w, View vw, const void* bias, View vbias, int bias_dt, \
        void* o, View vo, u32 m_rows, u32 n, u32 k, int has_bias) {                                \
        matvec_impl<DT_##X, DT_##W, DT_##O>(x, vx, w, vw, bias, vbias, bias_dt, o, vo, m_rows, n, \
                                            k, has_bias);                                          \
    }
#define MATVEC_W(X, O) MATVEC(q8_0, X, O) MATVEC(q4_0, X, O)
#define MATVEC_X(O, _) FLOATS_2(MATVEC_W, O)
FLOATS_1(MATVEC_X, _)

#define PRODUCT(B, A, O)                                                                           \
    extern "C" __global__ void product_##A##_##B##_##O(                                            \
        const void* a, View va, const void* bm, View vb, const void* bias, View vbias,             \
        int bias_dt, void* o, View vo, u32 m, u32 n, u32 k, Strides s, int has_bias) {             \
        product_impl<DT_##A, DT_##B, DT_##O>(a, va, bm, vb, bias, vbias, bias_dt, o, vo, m, n, k,  \
                                             s, has_bias);                                         \
    }
#define PRODUCT_B(A, O) WEIGHTS_3(PRODUCT, A, O)
#define PRODUCT_A(O, _) FLOATS_2(PRODUCT_B, O)
FLOATS_1(PRODUCT_A, _)
