// rms_norm and layer_norm: one block of GLMHAL_BLOCK threads per row.
// rms_norm rounds the normalized value to x's dtype before the weight, as GLM does.
// post_norm_add_norm_f32 and add_norm_f32: the residual step between two
// blocks in one launch (f32 activations and weights): p = rms_norm(d)·w_post
// (GLM-4's post-block norm; add_norm_f32 takes p = d), s = x + p,
// h = rms_norm(s)·w_next, writing p, s and h with the same arithmetic, in
// the same order, as rms_norm and add.
#include "compat.h"

// 1/sqrt(mean(x²) + eps) over the row of x starting at element `base`, in every thread.
DEVICE float rms_inverse(const int X, IN x, View vx, u64 base, u32 cols, float eps,
                         LOCAL float* scratch) {
    float ss = 0.0f;
    for (u32 c = LOCAL_ID; c < cols; c += GLMHAL_BLOCK) {
        const float v = load(X, x, vx, at(vx, base + c));
        ss += v * v;
    }
    return rsqrtf(block_sum(ss, scratch) / cols + eps);
}

DEVICE void norm_impl(const int X, const int W, const int O, IN x, View vx, IN w, View vw, IN b,
                      View vb, OUT o, View vo, u32 rows, u32 cols, const int layer, float eps,
                      LOCAL float* scratch) {
    const u64 r = group_row();
    if (r >= rows) return;
    const u64 base = r * cols;
    const u32 t = LOCAL_ID;
    if (!layer) {
        const float inv = rms_inverse(X, x, vx, base, cols, eps, scratch);
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
// rms_norm_* and layer_norm_*: which norm is a constant of the entry point
// (no barrier under a run-time branch).
#define NORM(X, W, O)                                                                              \
    KERNEL(rms_norm_##X##_##W##_##O)(IN x, View vx, IN w, View vw, IN b, View vb, OUT o, View vo,  \
                                     u32 rows, u32 cols, float eps) {                              \
        SHARED float scratch[GLMHAL_BLOCK];                                                        \
        norm_impl(DT_##X, DT_##W, DT_##O, x, vx, w, vw, b, vb, o, vo, rows, cols, 0, eps,          \
                  scratch);                                                                        \
    }                                                                                              \
    KERNEL(layer_norm_##X##_##W##_##O)(IN x, View vx, IN w, View vw, IN b, View vb, OUT o,         \
                                       View vo, u32 rows, u32 cols, float eps) {                   \
        SHARED float scratch[GLMHAL_BLOCK];                                                        \
        norm_impl(DT_##X, DT_##W, DT_##O, x, vx, w, vw, b, vb, o, vo, rows, cols, 1, eps,          \
                  scratch);                                                                        \
    }
#define NORM_W(W, O) FLOATS_3(NORM, W, O)
#define NORM_O(O, _) FLOATS_2(NORM_W, O)
FLOATS_1(NORM_O, _)

DEVICE void add_norm_impl(IN d, View vd, IN wp, View vwp, OUT p, View vp, IN x, View vx, OUT s,
                          View vs, IN wn, View vwn, OUT h, View vh, u32 rows, u32 cols,
                          float eps_post, float eps_next, const int post, LOCAL float* scratch) {
    const u64 r = group_row();
    if (r >= rows) return;
    const u64 base = r * cols;
    const u32 t = LOCAL_ID;
    if (post) {
        const float inv = rms_inverse(DT_F32, d, vd, base, cols, eps_post, scratch);
        for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
            const float v = load(DT_F32, d, vd, at(vd, base + c)) * inv;
            store(DT_F32, p, vp, at(vp, base + c), v * load(DT_F32, wp, vwp, at(vwp, c)));
        }
    }
    float ss = 0.0f;
    for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
        const float pv = post ? load(DT_F32, p, vp, at(vp, base + c)) : load(DT_F32, d, vd, at(vd, base + c));
        const float sv = load(DT_F32, x, vx, at(vx, base + c)) + pv;
        store(DT_F32, s, vs, at(vs, base + c), sv);
        ss += sv * sv;
    }
    const float inv = rsqrtf(block_sum(ss, scratch) / cols + eps_next);
    for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
        const float v = load(DT_F32, s, vs, at(vs, base + c)) * inv;
        store(DT_F32, h, vh, at(vh, base + c), v * load(DT_F32, wn, vwn, at(vwn, c)));
    }
}

// The post-block norm is a constant of the entry point, so no barrier sits
// under a run-time branch.
#define ADD_NORM(NAME, POST)                                                                       \
    KERNEL(NAME)(IN d, View vd, IN wp, View vwp, OUT p, View vp, IN x, View vx, OUT s, View vs,     \
                 IN wn, View vwn, OUT h, View vh, u32 rows, u32 cols, float eps_post,              \
                 float eps_next) {                                                                 \
        SHARED float scratch[GLMHAL_BLOCK];                                                        \
        add_norm_impl(d, vd, wp, vwp, p, vp, x, vx, s, vs, wn, vwn, h, vh, rows, cols, eps_post,   \
                      eps_next, POST, scratch);                                                    \
    }
ADD_NORM(add_norm_f32, 0)
ADD_NORM(post_norm_add_norm_f32, 1)
