// softmax (scaled, optionally causal) and argmax over rows: one block per row.
#include "compat.h"
#include "dtypes.h"

template <int X, int O>
__device__ void softmax_impl(const void* x, View vx, void* o, View vo, u32 rows, u32 cols,
                             float scale, int causal) {
    __shared__ float scratch[GLMHAL_BLOCK / GLMHAL_WARP];
    const u64 r = blockIdx.x + (u64)blockIdx.y * gridDim.x;
    if (r >= rows) return;
    const u64 base = r * cols;
    // Causal rows see columns up to r + cols - rows.
    const u32 visible = causal ? (u32)(r + cols - rows + 1) : cols;
    float m = -3.402823466e38f;
    for (u32 c = threadIdx.x; c < visible; c += GLMHAL_BLOCK) m = fmaxf(m, load<X>(x, vx, at(vx, base + c)) * scale);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (u32 c = threadIdx.x; c < visible; c += GLMHAL_BLOCK) s += expf(load<X>(x, vx, at(vx, base + c)) * scale - m);
    const float sum = block_sum(s, scratch);
    for (u32 c = threadIdx.x; c < cols; c += GLMHAL_BLOCK) {
        const float v = c < visible ? expf(load<X>(x, vx, at(vx, base + c)) * scale - m) / sum : 0.0f;
        store<O>(o, vo, at(vo, base + c), v);
    }
}

template <int X>
__device__ void argmax_impl(const void* x, View vx, void* o, View vo, u32 rows, u32 cols) {
    __shared__ float best_v[GLMHAL_BLOCK];
    __shared__ u32 best_i[GLMHAL_BLOCK];
    const u64 r = blockIdx.x + (u64)blockIdx.y * gridDim.x;
    if (r >= rows) return;
    const u64 base = r * cols;
    const u32 none = 0xffffffffu;
    float bv = 0.0f;
    u32 bi = none;
    for (u32 c = threadIdx.x; c < cols; c += GLMHAL_BLOCK) {
        const float v = load<X>(x, vx, at(vx, base + c));
        if (bi == none || v > bv) { bv = v; bi = c; }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    // The first index wins ties.
    for (u32 s = GLMHAL_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float ov = best_v[threadIdx.x + s];
            const u32 oi = best_i[threadIdx.x + s], mine = best_i[threadIdx.x];
            if (oi != none && (mine == none || ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < mine))) {
                best_v[threadIdx.x] = ov;
                best_i[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) ((i32*)o)[vo.offset + at(vo, r)] = (i32)best_i[0];
}

#define SOFTMAX(X, O)                                                                              \
    extern "C" __global__ void softmax_##X##_##O(const void* x, View vx, void* o, View vo, u32 rows, \
                                                 u32 cols, float scale, int causal) {              \
        softmax_impl<DT_##X, DT_##O>(x, vx, o, vo, rows, cols, scale, causal);                     \
    }
#define SOFTMAX_X(O, _) FLOATS_2(SOFTMAX, O)
FLOATS_1(SOFTMAX_X, _)

#define ARGMAX(X, _)                                                                               \
    extern "C" __global__ void argmax_##X(const void* x, View vx, void* o, View vo, u32 rows,      \
                                          u32 cols) {                                              \
        argmax_impl<DT_##X>(x, vx, o, vo, rows, cols);                                             \
    }
FLOATS_1(ARGMAX, _)
