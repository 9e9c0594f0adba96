// Products.
// matvec_<x>_<w>_<o>: y = x·Wᵀ (+ bias) for few rows (decode): one warp per
//   output. With Q8_0/Q4_0 weights each lane takes whole 32-value blocks,
//   multiplies the block's integer weights with the f32 activations and
//   scales the sum once. Activations are not quantized: 8-bit activations
//   (as ggml uses) miss the conformance tolerance on a one-block bf16
//   product (NMSE 9.9e-4 against 5e-4), and decode is bound by reading the
//   weights anyway. Float weights are read lane-interleaved along k.
// product_<a>_<b>_<o>: o[b,m,n] = Σ_k a[b,m,k]·bm[b,k,n] (+ bias[n]) with any
//   element strides and dtypes (quantized weights decoded in the load), in
//   16×16 tiles through shared memory: mat_mul of float weights or many rows,
//   and batched_mat_mul.
// The bias dtype is a run-time argument (bias_dt), read once per output.
#include "compat.h"

DEVICE void matvec_impl(const int X, const int W, const int O, IN x, View vx, IN w, View vw,
                        IN bias, View vbias, int bias_dt, OUT o, View vo, u32 m_rows, u32 n, u32 k,
                        int has_bias, LOCAL float* scratch) {
    const u32 j = GROUP_ID(0) * (GLMHAL_BLOCK / GLMHAL_WARP) + LOCAL_ID / GLMHAL_WARP;
    const u32 row = GROUP_ID(1);
    const u32 lane = LOCAL_ID % GLMHAL_WARP;
    // Whole warps are active or not, and every thread reaches lane_sum.
    const int active = j < n && row < m_rows;
    float acc = 0.0f;
    if (active && W != DT_Q8_0 && W != DT_Q4_0) {
        for (u32 c = lane; c < k; c += GLMHAL_WARP)
            acc += load(X, x, vx, (u64)row * vx.s2 + (u64)c * vx.col_stride) *
                   load(W, w, vw, (u64)j * vw.s2 + (u64)c * vw.col_stride);
    } else if (active) {
        const u32 wbytes = W == DT_Q8_0 ? 34u : 18u;
        // Weight rows are whole blocks apart (s2 elements).
        IN wrow = w + vw.offset + (u64)j * (vw.s2 / 32) * wbytes;
        for (u32 blk = lane; blk < k / 32; blk += GLMHAL_WARP) {
            IN b = wrow + (u64)blk * wbytes;
            const u64 first = (u64)row * vx.s2 + (u64)blk * 32 * vx.col_stride;
            float sum = 0.0f;
            for (int q = 0; q < 32; q++) {
                const float wv = W == DT_Q8_0 ? (float)(i8)b[2 + q]
                                              : (float)((q < 16 ? (b[2 + q] & 15) : (b[2 + q - 16] >> 4)) - 8);
                sum += load(X, x, vx, first + (u64)q * vx.col_stride) * wv;
            }
            acc += block_scale(b) * sum;
        }
    }
    acc = lane_sum(acc, scratch);
    if (active && lane == 0) {
        if (has_bias) acc += load(bias_dt, bias, vbias, at(vbias, j));
        store(O, o, vo, (u64)row * vo.s2 + (u64)j * vo.col_stride, acc);
    }
}

typedef struct {
    u64 a_b, a_m, a_k, b_b, b_k, b_n, o_b, o_m, o_n;
} Strides;

#define TILE 16
#define TILE_PITCH 17

DEVICE void product_impl(const int A, const int B, const int O, IN a, View va, IN bm, View vb,
                         IN bias, View vbias, int bias_dt, OUT o, View vo, u32 m, u32 n, u32 k,
                         Strides s, int has_bias, LOCAL float* ta, LOCAL float* tb) {
    const u32 bi = GROUP_ID(2), tx = LOCAL_ID % TILE, ty = LOCAL_ID / TILE;
    const u32 row = GROUP_ID(1) * TILE + ty, col = GROUP_ID(0) * TILE + tx;
    float acc = 0.0f;
    for (u32 t = 0; t < k; t += TILE) {
        const u32 ka = t + tx, kb = t + ty;
        ta[ty * TILE_PITCH + tx] =
            (row < m && ka < k) ? load(A, a, va, bi * s.a_b + row * s.a_m + ka * s.a_k) : 0.0f;
        tb[ty * TILE_PITCH + tx] =
            (col < n && kb < k) ? load(B, bm, vb, bi * s.b_b + kb * s.b_k + col * s.b_n) : 0.0f;
        SYNC();
        for (int q = 0; q < TILE; q++) acc += ta[ty * TILE_PITCH + q] * tb[q * TILE_PITCH + tx];
        SYNC();
    }
    if (row < m && col < n) {
        if (has_bias) acc += load(bias_dt, bias, vbias, at(vbias, col));
        store(O, o, vo, bi * s.o_b + row * s.o_m + col * s.o_n, acc);
    }
}

#define MATVEC(W, X, O)                                                                            \
    KERNEL(matvec_##X##_##W##_##O)(IN x, View vx, IN w, View vw, IN bias, View vbias, int bias_dt, \
                                   OUT o, View vo, u32 m_rows, u32 n, u32 k, int has_bias) {       \
        SHARED float scratch[GLMHAL_BLOCK];                                                        \
        matvec_impl(DT_##X, DT_##W, DT_##O, x, vx, w, vw, bias, vbias, bias_dt, o, vo, m_rows, n,  \
                    k, has_bias, scratch);                                                         \
    }
#define MATVEC_W(X, O) WEIGHTS_3(MATVEC, X, O)
#define MATVEC_X(O, _) FLOATS_2(MATVEC_W, O)
FLOATS_1(MATVEC_X, _)

#define PRODUCT(B, A, O)                                                                           \
    KERNEL(product_##A##_##B##_##O)(IN a, View va, IN bm, View vb, IN bias, View vbias,            \
                                    int bias_dt, OUT o, View vo, u32 m, u32 n, u32 k, Strides s,   \
                                    int has_bias) {                                                \
        SHARED float ta[TILE * TILE_PITCH];                                                        \
        SHARED float tb[TILE * TILE_PITCH];                                                        \
        product_impl(DT_##A, DT_##B, DT_##O, a, va, bm, vb, bias, vbias, bias_dt, o, vo, m, n, k,  \
                     s, has_bias, ta, tb);                                                         \
    }
#define PRODUCT_B(A, O) WEIGHTS_3(PRODUCT, A, O)
#define PRODUCT_A(O, _) FLOATS_2(PRODUCT_B, O)
FLOATS_1(PRODUCT_A, _)
