// softmax (scaled, optionally causal) and argmax over rows: one block per row.
// A row argmax finds a NaN or an infinity in is reported in status (code 3,
// the row), read at the next wait.
#include "compat.h"

DEVICE void softmax_impl(const int X, const int O, IN x, View vx, OUT o, View vo, u32 rows,
                         u32 cols, float scale, int causal, LOCAL float* scratch) {
    const u64 r = group_row();
    if (r >= rows) return;
    const u64 base = r * cols;
    const u32 t = LOCAL_ID;
    // Causal rows see columns up to r + cols - rows.
    const u32 visible = causal ? (u32)(r + cols - rows + 1) : cols;
    float m = -3.402823466e38f;
    for (u32 c = t; c < visible; c += GLMHAL_BLOCK) m = fmaxf(m, load(X, x, vx, at(vx, base + c)) * scale);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (u32 c = t; c < visible; c += GLMHAL_BLOCK) s += expf(load(X, x, vx, at(vx, base + c)) * scale - m);
    const float sum = block_sum(s, scratch);
    for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
        const float v = c < visible ? expf(load(X, x, vx, at(vx, base + c)) * scale - m) / sum : 0.0f;
        store(O, o, vo, at(vo, base + c), v);
    }
}

DEVICE void argmax_impl(const int X, IN x, View vx, OUT o, View vo, u32 rows, u32 cols,
                        GLOBAL u32* status, LOCAL float* best_v, LOCAL u32* best_i) {
    const u64 r = group_row();
    if (r >= rows) return;
    const u64 base = r * cols;
    const u32 t = LOCAL_ID;
    const u32 none = 0xffffffffu;
    float bv = 0.0f;
    u32 bi = none;
    int bad = 0;
    for (u32 c = t; c < cols; c += GLMHAL_BLOCK) {
        const float v = load(X, x, vx, at(vx, base + c));
        bad |= not_finite(v);
        if (bi == none || v > bv) {
            bv = v;
            bi = c;
        }
    }
    if (bad) {
        ATOMIC_MAX(&status[0], STATUS_NON_FINITE);
        status[1] = (u32)r;
    }
    best_v[t] = bv;
    best_i[t] = bi;
    SYNC();
    // The first index wins ties.
    for (u32 s = GLMHAL_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) {
            const float ov = best_v[t + s];
            const u32 oi = best_i[t + s], mine = best_i[t];
            if (oi != none && (mine == none || ov > best_v[t] || (ov == best_v[t] && oi < mine))) {
                best_v[t] = ov;
                best_i[t] = oi;
            }
        }
        SYNC();
    }
    if (t == 0) ((GLOBAL i32*)o)[vo.offset + at(vo, r)] = (i32)best_i[0];
}

#define SOFTMAX(X, O)                                                                              \
    KERNEL(softmax_##X##_##O)(IN x, View vx, OUT o, View vo, u32 rows, u32 cols, float scale,      \
                              int causal) {                                                        \
        SHARED float scratch[GLMHAL_BLOCK];                                                        \
        softmax_impl(DT_##X, DT_##O, x, vx, o, vo, rows, cols, scale, causal, scratch);            \
    }
#define SOFTMAX_X(O, _) FLOATS_2(SOFTMAX, O)
FLOATS_1(SOFTMAX_X, _)

#define ARGMAX(X, _)                                                                               \
    KERNEL(argmax_##X)(IN x, View vx, OUT o, View vo, u32 rows, u32 cols, GLOBAL u32* status) {    \
        SHARED float best_v[GLMHAL_BLOCK];                                                         \
        SHARED u32 best_i[GLMHAL_BLOCK];                                                           \
        argmax_impl(DT_##X, x, vx, o, vo, rows, cols, status, best_v, best_i);                     \
    }
FLOATS_1(ARGMAX, _)
