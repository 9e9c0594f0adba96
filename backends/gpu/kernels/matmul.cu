// Products.
// matvec_<x>_<w>_<o>: y = x·Wᵀ (+ bias) for up to MATVEC_ROWS rows (decode,
//   batched decode): one warp per output column j, every row in the same
//   pass, so the weights are read once whatever the batch. Each lane takes
//   16 weight bytes at a time: packed Q8_0 (16 quants) and Q4_0 (one
//   32-value block) with their scale; f16/bf16 (8 values) and f32 (4) rows
//   where the planner found them 16-byte aligned (`aligned`), widened by
//   the hardware. Weights in ggml's block layout or unaligned float rows
//   take the element-wise loop. Activations are read as they are, not
//   quantized: 8-bit activations (as ggml uses) miss the conformance
//   tolerance on a one-block bf16 product (NMSE 9.9e-4 against 5e-4), and
//   decode is bound by reading the weights anyway.
// product_<a>_<b>_<o>: o[b,m,n] = Σ_k a[b,m,k]·bm[b,k,n] (+ bias[n]) with any
//   element strides and dtypes (quantized weights decoded in the load), in
//   16×16 tiles through shared memory: mat_mul of float weights or many rows,
//   and batched_mat_mul.
// The bias dtype is a run-time argument (bias_dt), read once per output.
#include "compat.h"
#include "vectors.h"

// Rows one matvec launch multiplies (the planner's MATVEC_MAX_ROWS).
#define MATVEC_ROWS 8

// acc[r] += scale · Σ_i wv[i]·x[r, c0 + i] for every row r < m_rows.
DEVICE void rows_fma(const int X, IN x, View vx, u32 m_rows, u64 c0, const float* wv, int count,
                     float scale, float* acc) {
    for (u32 r = 0; r < MATVEC_ROWS; r++) {
        if (r < m_rows) {
            const u64 first = (u64)r * vx.s2 + c0 * vx.col_stride;
            float sum = 0.0f;
            for (int i = 0; i < count; i++) sum += wv[i] * load(X, x, vx, first + (u64)i * vx.col_stride);
            acc[r] += scale * sum;
        }
    }
}

// The 16-byte chunks of packed row j (16 Q8_0 quants or one Q4_0 block each).
DEVICE void matvec_packed(const int X, const int W, IN x, View vx, IN w, u32 j, u32 m_rows, u32 k,
                          u32 lane, float* acc) {
    IN row = w + (u64)j * packed_row_bytes(W, k);
    const u32 per = W == DT_Q8_0R ? 16u : 32u;
    for (u32 ch = lane; ch < k / per; ch += GLMHAL_WARP) {
        const uint4 q = load_16_bytes(row, (u64)ch * 16);
        const u32 words[4] = {q.x, q.y, q.z, q.w};
        float wv[32];
        for (int i = 0; i < 16; i++) {
            const u32 b = (words[i / 4] >> (8 * (i % 4))) & 255u;
            if (W == DT_Q8_0R) {
                wv[i] = (float)(i8)b;
            } else {
                wv[i] = (float)(b & 15u) - 8.0f;
                wv[i + 16] = (float)(b >> 4) - 8.0f;
            }
        }
        const float scale = packed_scale(row, W, k, (u64)ch * per / 32);
        rows_fma(X, x, vx, m_rows, (u64)ch * per, wv, (int)per, scale, acc);
    }
}

// 16-byte chunks of an aligned float row j: 8 f16/bf16 or 4 f32 values each.
DEVICE void matvec_aligned(const int X, const int W, IN x, View vx, IN w, View vw, u32 j, u32 m_rows,
                           u32 k, u32 lane, float* acc) {
    const u32 per = W == DT_F32 ? 4u : 8u;
    const u64 row = (vw.offset + (u64)j * vw.s2) * (W == DT_F32 ? 4u : 2u);
    for (u32 ch = lane; ch < k / per; ch += GLMHAL_WARP) {
        float wv[8];
        if (W == DT_F16) load_f16x8(w, row + (u64)ch * 16, wv);
        if (W == DT_BF16) load_bf16x8(w, row + (u64)ch * 16, wv);
        if (W == DT_F32) load_f32x4(w, row + (u64)ch * 16, wv);
        rows_fma(X, x, vx, m_rows, (u64)ch * per, wv, (int)per, 1.0f, acc);
    }
}

// Row j in ggml's Q8_0/Q4_0 blocks (34 or 18 bytes), a whole block per lane.
DEVICE void matvec_blocks(const int X, const int W, IN x, View vx, IN w, View vw, u32 j, u32 m_rows,
                          u32 k, u32 lane, float* acc) {
    const u32 wbytes = W == DT_Q8_0 ? 34u : 18u;
    // Weight rows are whole blocks apart (s2 elements).
    IN wrow = w + vw.offset + (u64)j * (vw.s2 / 32) * wbytes;
    for (u32 blk = lane; blk < k / 32; blk += GLMHAL_WARP) {
        IN b = wrow + (u64)blk * wbytes;
        float wv[32];
        for (int q = 0; q < 32; q++)
            wv[q] = W == DT_Q8_0 ? (float)(i8)b[2 + q]
                                 : (float)((q < 16 ? (b[2 + q] & 15) : (b[2 + q - 16] >> 4)) - 8);
        rows_fma(X, x, vx, m_rows, (u64)blk * 32, wv, 32, block_scale(b), acc);
    }
}

// acc[r] += row j of W · row r of x, for r < m_rows (this lane's share).
DEVICE void matvec_dot(const int X, const int W, IN x, View vx, IN w, View vw, u32 j, u32 m_rows,
                       u32 k, u32 lane, int aligned, float* acc) {
    if (W == DT_Q8_0R || W == DT_Q4_0R) {
        matvec_packed(X, W, x, vx, w, j, m_rows, k, lane, acc);
    } else if (W == DT_Q8_0 || W == DT_Q4_0) {
        matvec_blocks(X, W, x, vx, w, vw, j, m_rows, k, lane, acc);
    } else if (aligned) {
        matvec_aligned(X, W, x, vx, w, vw, j, m_rows, k, lane, acc);
    } else {
        for (u32 c = lane; c < k; c += GLMHAL_WARP) {
            const float wv = load(W, w, vw, (u64)j * vw.s2 + (u64)c * vw.col_stride);
            rows_fma(X, x, vx, m_rows, c, &wv, 1, 1.0f, acc);
        }
    }
}

DEVICE void matvec_impl(const int X, const int W, const int O, IN x, View vx, IN w, View vw,
                        IN bias, View vbias, int bias_dt, OUT o, View vo, u32 m_rows, u32 n, u32 k,
                        int has_bias, int aligned, LOCAL float* scratch) {
    const u32 j = GROUP_ID(0) * (GLMHAL_BLOCK / GLMHAL_WARP) + LOCAL_ID / GLMHAL_WARP;
    const u32 lane = LOCAL_ID % GLMHAL_WARP;
    // Whole warps are active or not, and every thread reaches lane_sums.
    const int active = j < n;
    float acc[MATVEC_ROWS];
    for (int r = 0; r < MATVEC_ROWS; r++) acc[r] = 0.0f;
    if (active) matvec_dot(X, W, x, vx, w, vw, j, m_rows, k, lane, aligned, acc);
    lane_sums(acc, m_rows, MATVEC_ROWS, scratch);
    if (active && lane == 0) {
        const float b = has_bias ? load(bias_dt, bias, vbias, at(vbias, j)) : 0.0f;
        for (u32 r = 0; r < m_rows; r++)
            store(O, o, vo, (u64)r * vo.s2 + (u64)j * vo.col_stride, has_bias ? acc[r] + b : acc[r]);
    }
}

// The gate/up product and SwiGLU in one pass: warp j computes gate row j and
// up row j + gates for every row, writes both into gu (as matvec would) and
// silu(gate)·up into a (as swiglu would, from the values gu holds).
DEVICE void matvec_swiglu_impl(const int X, const int W, const int O, IN x, View vx, IN w, View vw,
                               OUT gu, View vgu, OUT a, View va, u32 m_rows, u32 gates, u32 k,
                               int aligned, LOCAL float* scratch) {
    const u32 j = GROUP_ID(0) * (GLMHAL_BLOCK / GLMHAL_WARP) + LOCAL_ID / GLMHAL_WARP;
    const u32 lane = LOCAL_ID % GLMHAL_WARP;
    const int active = j < gates;
    float g[MATVEC_ROWS], u[MATVEC_ROWS];
    for (int r = 0; r < MATVEC_ROWS; r++) g[r] = u[r] = 0.0f;
    if (active) {
        matvec_dot(X, W, x, vx, w, vw, j, m_rows, k, lane, aligned, g);
        matvec_dot(X, W, x, vx, w, vw, j + gates, m_rows, k, lane, aligned, u);
    }
    lane_sums(g, m_rows, MATVEC_ROWS, scratch);
    lane_sums(u, m_rows, MATVEC_ROWS, scratch);
    if (active && lane == 0) {
        for (u32 r = 0; r < m_rows; r++) {
            store(O, gu, vgu, (u64)r * vgu.s2 + (u64)j * vgu.col_stride, g[r]);
            store(O, gu, vgu, (u64)r * vgu.s2 + (u64)(j + gates) * vgu.col_stride, u[r]);
            store(O, a, va, (u64)r * va.s2 + (u64)j * va.col_stride,
                  silu(round_to(O, g[r])) * round_to(O, u[r]));
        }
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
                                   OUT o, View vo, u32 m_rows, u32 n, u32 k, int has_bias,         \
                                   int aligned) {                                                  \
        SHARED float scratch[GLMHAL_OPENCL ? GLMHAL_BLOCK * MATVEC_ROWS : 1];                      \
        matvec_impl(DT_##X, DT_##W, DT_##O, x, vx, w, vw, bias, vbias, bias_dt, o, vo, m_rows, n,  \
                    k, has_bias, aligned, scratch);                                                \
    }
#define MATVEC_W(X, O) PREPARED_3(MATVEC, X, O)
#define MATVEC_X(O, _) FLOATS_2(MATVEC_W, O)
FLOATS_1(MATVEC_X, _)

#define MATVEC_SWIGLU(W, _)                                                                        \
    KERNEL(matvec_swiglu_f32_##W##_f32)(IN x, View vx, IN w, View vw, OUT gu, View vgu, OUT a,     \
                                        View va, u32 m_rows, u32 gates, u32 k, int aligned) {      \
        SHARED float scratch[GLMHAL_OPENCL ? GLMHAL_BLOCK * MATVEC_ROWS : 1];                      \
        matvec_swiglu_impl(DT_F32, DT_##W, DT_F32, x, vx, w, vw, gu, vgu, a, va, m_rows, gates, k, \
                           aligned, scratch);                                                      \
    }
PREPARED_1(MATVEC_SWIGLU, _)

#define PRODUCT(B, A, O)                                                                           \
    KERNEL(product_##A##_##B##_##O)(IN a, View va, IN bm, View vb, IN bias, View vbias,            \
                                    int bias_dt, OUT o, View vo, u32 m, u32 n, u32 k, Strides s,   \
                                    int has_bias) {                                                \
        SHARED float ta[TILE * TILE_PITCH];                                                        \
        SHARED float tb[TILE * TILE_PITCH];                                                        \
        product_impl(DT_##A, DT_##B, DT_##O, a, va, bm, vb, bias, vbias, bias_dt, o, vo, m, n, k,  \
                     s, has_bias, ta, tb);                                                         \
    }
#define PRODUCT_B(A, O) PREPARED_3(PRODUCT, A, O)
#define PRODUCT_A(O, _) FLOATS_2(PRODUCT_B, O)
FLOATS_1(PRODUCT_A, _)
