// rope_<x>_<o>: rotary embedding of the first `rot` dims of each head of
// x [T, heads, D] at positions [T]: GLM's interleaved pairs (2i, 2i+1) or
// NeoX halves (i, i + rot/2); angles in f32. One thread per element.
#include "compat.h"

DEVICE void rope_impl(const int X, const int O, IN x, View vx, IN pos, View vpos, OUT o, View vo,
                      u32 tokens, u32 heads, u32 dim, u32 rot, float theta, int neox) {
    const u64 n = (u64)tokens * heads * dim;
    GRID_STRIDE(e, n) {
        const u32 d = (u32)(e % dim);
        const u64 head = e - d, t = e / ((u64)heads * dim);
        if (d >= rot) {
            store(O, o, vo, at(vo, e), load(X, x, vx, at(vx, e)));
            continue;
        }
        const u32 half_rot = rot / 2;
        const u32 i = neox ? d % half_rot : d / 2;
        const u32 first = neox ? i : 2 * i, second = neox ? i + half_rot : 2 * i + 1;
        const float p = (float)load_i32(pos, vpos, at(vpos, t));
        const float angle = p * powf(theta, -2.0f * (float)i / (float)rot);
        const float s = sinf(angle), c = cosf(angle);
        const float x0 = load(X, x, vx, at(vx, head + first)), x1 = load(X, x, vx, at(vx, head + second));
        store(O, o, vo, at(vo, e), d == first ? x0 * c - x1 * s : x1 * c + x0 * s);
    }
}

#define ROPE(X, O)                                                                                 \
    KERNEL(rope_##X##_##O)(IN x, View vx, IN pos, View vpos, OUT o, View vo, u32 tokens,           \
                           u32 heads, u32 dim, u32 rot, float theta, int neox) {                   \
        rope_impl(DT_##X, DT_##O, x, vx, pos, vpos, o, vo, tokens, heads, dim, rot, theta, neox);  \
    }
#define ROPE_X(O, _) FLOATS_2(ROPE, O)
FLOATS_1(ROPE_X, _)
