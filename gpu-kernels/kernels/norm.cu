// rms_norm and layer_norm: one block of GLMHAL_BLOCK threads per row.
// rms_norm rounds the normalized value to x's dtype before the weight, as GLM does.
#include "compat.h"
#include "dtypes.h"

template <int X, int W, int O>
__device__ void norm_impl(const void* x, View vx, const void* w, View vw, const void* b, View vb,
                          void* o, View vo, u32 rows, u32 cols, int layer, float eps) {
    __shared__ float scratch[GLMHAL_BLOCK / GLMHAL_WARP];
    const u64 r = blockIdx.x + (u64)blockIdx.y * gridDim.x;
    if (r >= rows) return;
    const u64 base = r * cols;
    if (!layer) {
        float ss = 0.0f;
        for (u32 c = threadIdx.x; c < cols; c += GLMHAL_BLOCK) {
            const float v = load<X>(x, vx, at(vx, base + c));
            ss += v * v;
        }
        const float inv = rsqrtf(block_sum(ss, scratch) / cols + eps);
        for (u32 c = threadIdx.x; c < cols; c += GLMHAL_BLOCK) {
            const float v = round_to<X>(load<X>(x, vx, at(vx, base + c)) * inv);
            store<O>(o, vo, at(vo, base + c), v * load<W>(w, vw, at(vw, c)));
        }
        return;
    }
    float s = 0.0f;
    for (u32 c = threadIdx.x; c < cols; c += GLMHAL_BLOCK) s += load<X>(x, vx, at(vx, base + c));
    const float mean = block_sum(s, scratch) / cols;
    float sv = 0.0f;
    for (u32 c = threadIdx.x; c < cols; c += GLMHAL_BLOCK) {
        const float d = load<X>(x, vx, at(vx, base + c)) - mean;
        sv += d * d;
    }
    const float inv = rsqrtf(block_sum(sv, scratch) / cols + eps);
    for (u32 c = threadIdx.x; c < cols; c += GLMHAL_BLOCK) {
        const float v = (load<X>(x, vx, at(vx, base + c)) - mean) * inv;
        store<O>(o, vo, at(vo, base + c), v * load<W>(w, vw, at(vw, c)) + load<W>(b, vb, at(vb, c)));
    }
}

// Weight and bias share a dtype; the output has its own.
#define NORM(X, W, O)                                                                              \
    extern "C" __global__ void norm_##X##_##W##_##O(const void* x, View vx, const void* w, View vw, \
                                                    const void* b, View vb, void* o, View vo,      \
                                                    u32 rows, u32 cols, int layer, float eps) {    \
        norm_impl<DT_##X, DT_##W, DT_##O>(x, vx, w, vw, b, vb, o, vo, rows, cols, layer, eps);     \
    }
#define NORM_W(W, O) FLOATS_3(NORM, W, O)
#define NORM_O(O, _) FLOATS_2(NORM_W, O)
FLOATS_1(NORM_O, _)
