// rms_norm and layer_norm: one block of GLMHAL_BLOCK threads per row.
// rms_norm rounds the normalized value to x's dtype before the weight, as GLM does.
#include "compat.h"

DEVICE void norm_impl(const int X, const int W, const int O, IN x, View vx, IN w, View vw, IN b,
                      View vb, OUT o, View vo, u32 rows, u32 cols, int layer, float eps,
                      LOCAL float* scratch) {
    const u64 r = group_row();
    if (r >= rows) return;
    const u64 base = r * cols;
    const u32 t = LOCAL_ID;
    if (!layer) {
        float ss = 0.0f;
        for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
            const float v = load(X, x, vx, at(vx, base + c));
            ss += v * v;
        }
        const float inv = rsqrtf(block_sum(ss, scratch) / cols + eps);
        for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
            const float v = round_to(X, load(X, x, vx, at(vx, base + c)) * inv);
            store(O, o, vo, at(vo, base + c), v * load(W, w, vw, at(vw, c)));
        }
        return;
    }
    float s = 0.0f;
    for (u32 c = t; c < cols; c += GLMHAL_BLOCK) s += load(X, x, vx, at(vx, base + c));
    const float mean = block_sum(s, scratch) / cols;
    float sv = 0.0f;
    for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
        const float d = load(X, x, vx, at(vx, base + c)) - mean;
        sv += d * d;
    }
    const float inv = rsqrtf(block_sum(sv, scratch) / cols + eps);
    for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
        const float v = (load(X, x, vx, at(vx, base + c)) - mean) * inv;
        store(O, o, vo, at(vo, base + c), v * load(W, w, vw, at(vw, c)) + load(W, b, vb, at(vb, c)));
    }
}

// Weight and bias share a dtype; the output has its own.
#define NORM(X, W, O)                                                                              \
    KERNEL(norm_##X##_##W##_##O)(IN x, View vx, IN w, View vw, IN b, View vb, OUT o, View vo,      \
                                 u32 rows, u32 cols, int layer, float eps) {                       \
        SHARED float scratch[GLMHAL_BLOCK];                                                        \
        norm_impl(DT_##X, DT_##W, DT_##O, x, vx, w, vw, b, vb, o, vo, rows, cols, layer, eps,      \
                  scratch);                                                                        \
    }
#define NORM_W(W, O) FLOATS_3(NORM, W, O)
#define NORM_O(O, _) FLOATS_2(NORM_W, O)
FLOATS_1(NORM_O, _)
