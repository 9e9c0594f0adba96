// rope_<x>_<o>: rotary embedding of the first `rot` dims of each head of
// x [T, heads, D] at positions [T]: GLM's interleaved pairs (2i, 2i+1) or
// NeoX halves (i, i + rot/2); angles in f32. One thread per element.
// rope_kv_f32_<c>: a step's q and k rotated and k and v written into the
// cache at their positions in one launch: the values rope and kv_write
// compute, written where both would write them (the rotated k is kept as
// well). A position outside the cache is reported as kv_write does.
#include "compat.h"

// Element e (dim d of the head starting at element head) of x [T, heads, D], rotated.
DEVICE float rope_value(const int X, IN x, View vx, u64 e, u32 d, float p, u32 rot, float theta,
                        int neox) {
    if (d >= rot) return load(X, x, vx, at(vx, e));
    const u64 head = e - d;
    const u32 half_rot = rot / 2;
    const u32 i = neox ? d % half_rot : d / 2;
    const u32 first = neox ? i : 2 * i, second = neox ? i + half_rot : 2 * i + 1;
    const float angle = p * powf(theta, -2.0f * (float)i / (float)rot);
    const float s = sinf(angle), c = cosf(angle);
    const float x0 = load(X, x, vx, at(vx, head + first)), x1 = load(X, x, vx, at(vx, head + second));
    return d == first ? x0 * c - x1 * s : x1 * c + x0 * s;
}

DEVICE void rope_impl(const int X, const int O, IN x, View vx, IN pos, View vpos, OUT o, View vo,
                      u32 tokens, u32 heads, u32 dim, u32 rot, float theta, int neox) {
    const u64 n = (u64)tokens * heads * dim;
    GRID_STRIDE(e, n) {
        const u32 d = (u32)(e % dim);
        const u64 t = e / ((u64)heads * dim);
        const float p = (float)load_i32(pos, vpos, at(vpos, t));
        store(O, o, vo, at(vo, e), rope_value(X, x, vx, e, d, p, rot, theta, neox));
    }
}

DEVICE void rope_kv_impl(const int C, IN q, View vq, IN k, View vk, IN v, View vv, IN pos,
                         View vpos, OUT qr, View vqr, OUT kr, View vkr, OUT kc, View vkc, OUT vc,
                         View vvc, u32 tokens, u32 heads, u32 kv_heads, u32 dim, u32 rot,
                         float theta, int neox, u32 capacity, GLOBAL u32* status) {
    const u32 width = heads + 2 * kv_heads;
    GRID_STRIDE(e, (u64)tokens * width * dim) {
        const u32 d = (u32)(e % dim), hh = (u32)(e / dim % width);
        const u64 t = e / ((u64)width * dim);
        const i32 at_pos = load_i32(pos, vpos, at(vpos, t));
        const float p = (float)at_pos;
        if (hh < heads) {
            const u64 qe = (t * heads + hh) * dim + d;
            store(DT_F32, qr, vqr, at(vqr, qe), rope_value(DT_F32, q, vq, qe, d, p, rot, theta, neox));
            continue;
        }
        const u32 h = hh < heads + kv_heads ? hh - heads : hh - heads - kv_heads;
        const u64 ke = (t * kv_heads + h) * dim + d;
        float value;
        if (hh < heads + kv_heads) {
            value = rope_value(DT_F32, k, vk, ke, d, p, rot, theta, neox);
            store(DT_F32, kr, vkr, at(vkr, ke), value);
        } else {
            value = load(DT_F32, v, vv, at(vv, ke));
        }
        if ((u32)at_pos >= capacity) {
            if (h == 0 && d == 0) {
                ATOMIC_MAX(&status[0], STATUS_POSITION_OUT_OF_RANGE);
                status[1] = (u32)at_pos;
            }
            continue;
        }
        const u64 ce = ((u64)(u32)at_pos * kv_heads + h) * dim + d;
        if (hh < heads + kv_heads)
            store(C, kc, vkc, at(vkc, ce), value);
        else
            store(C, vc, vvc, at(vvc, ce), value);
    }
}

#define ROPE(X, O)                                                                                 \
    KERNEL(rope_##X##_##O)(IN x, View vx, IN pos, View vpos, OUT o, View vo, u32 tokens,           \
                           u32 heads, u32 dim, u32 rot, float theta, int neox) {                   \
        rope_impl(DT_##X, DT_##O, x, vx, pos, vpos, o, vo, tokens, heads, dim, rot, theta, neox);  \
    }
#define ROPE_X(O, _) FLOATS_2(ROPE, O)
FLOATS_1(ROPE_X, _)

#define ROPE_KV(C, _)                                                                              \
    KERNEL(rope_kv_f32_##C)(IN q, View vq, IN k, View vk, IN v, View vv, IN pos, View vpos,        \
                            OUT qr, View vqr, OUT kr, View vkr, OUT kc, View vkc, OUT vc,          \
                            View vvc, u32 tokens, u32 heads, u32 kv_heads, u32 dim, u32 rot,       \
                            float theta, int neox, u32 capacity, GLOBAL u32* status) {             \
        rope_kv_impl(DT_##C, q, vq, k, vk, v, vv, pos, vpos, qr, vqr, kr, vkr, kc, vkc, vc, vvc,   \
                     tokens, heads, kv_heads, dim, rot, theta, neox, capacity, status);            \
    }
FLOATS_1(ROPE_KV, _)
