// The mixture-of-experts ops.
// mat_mul_id_<x>_<w>_<o>: out[t,j] = x[t, j or 0]·W[ids[t,j]]ᵀ, one warp per
//   output column of one (token, slot) pair (grid x: columns, y and z: pairs),
//   the chosen expert's row read as stored (Q8_0/Q4_0 a whole block per
//   lane), so only the chosen experts' weights are read. An id outside the
//   experts fills its output row with zeros and is reported in status
//   (code 4, the id).
// moe_select: one block per token: the biased scores sigmoid(logit) + bias
//   in shared memory, then one thread keeps groups and picks experts by
//   repeated maxima (lowest index on ties) and writes the ids in ascending
//   order. A NaN score is reported in status (code 5, the row).
// moe_weights: one thread per token: sigmoid of the chosen logits, divided
//   by their sum + 1e-20 when normalizing, times the scale. An id outside the
//   experts weighs 0 and is reported in status (code 6, the id).
#include "compat.h"

// Experts the selection kernel holds in shared memory (the planner's MOE_MAX_EXPERTS).
#define MOE_MAX_EXPERTS 1024

DEVICE void mat_mul_id_impl(const int X, const int W, const int O, IN x, View vx, IN w, View vw,
                            IN ids, View vids, OUT o, View vo, u64 pairs, u32 rows, u32 chosen,
                            u32 experts, u32 n, u32 k, GLOBAL u32* status, LOCAL float* scratch) {
    const u32 col = GROUP_ID(0) * (GLMHAL_BLOCK / GLMHAL_WARP) + LOCAL_ID / GLMHAL_WARP;
    // Pairs fold into grid y and z: the last z slice may run past the last pair.
    const u64 pair = GROUP_ID(1) + (u64)GROUP_ID(2) * NUM_GROUPS(1);
    const int real = pair < pairs;
    const u32 lane = LOCAL_ID % GLMHAL_WARP;
    const u32 id = real ? (u32)load_i32(ids, vids, at(vids, pair)) : 0u;
    // Whole warps are active or not, and every thread reaches lane_sums.
    const int active = real && col < n && id < experts;
    const u64 xrow = (pair / chosen) * rows + (rows == 1 ? 0 : pair % chosen);
    const u64 x0 = at(vx, xrow * k);
    float acc[1] = {0.0f};
    if (active && (W == DT_Q8_0 || W == DT_Q4_0)) {
        const u32 wbytes = W == DT_Q8_0 ? 34u : 18u;
        IN wrow = w + vw.offset + at(vw, ((u64)id * n + col) * k) / 32 * wbytes;
        for (u32 blk = lane; blk < k / 32; blk += GLMHAL_WARP) {
            IN b = wrow + (u64)blk * wbytes;
            float sum = 0.0f;
            for (u32 q = 0; q < 32; q++) {
                const float wq = W == DT_Q8_0 ? (float)(i8)b[2 + q]
                                              : (float)((q < 16 ? (b[2 + q] & 15) : (b[2 + q - 16] >> 4)) - 8);
                sum += wq * load(X, x, vx, x0 + ((u64)blk * 32 + q) * vx.col_stride);
            }
            acc[0] += block_scale(b) * sum;
        }
    } else if (active) {
        // Both rows run along the last dim: their first elements, then strides.
        const u64 w0 = at(vw, ((u64)id * n + col) * k);
        for (u32 c = lane; c < k; c += GLMHAL_WARP)
            acc[0] += load(W, w, vw, w0 + (u64)c * vw.col_stride) * load(X, x, vx, x0 + (u64)c * vx.col_stride);
    }
    lane_sums(acc, 1, 1, scratch);
    if (real && col < n && lane == 0) {
        store(O, o, vo, at(vo, pair * n + col), active ? acc[0] : 0.0f);
        if (id >= experts && col == 0) {
            ATOMIC_MAX(&status[0], STATUS_EXPERT_OUT_OF_RANGE);
            status[1] = id;
        }
    }
}

DEVICE float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// The best of `count` candidates among scores[0..count) whose flag is `want`
// (lowest index on ties), or count when none is.
DEVICE u32 best_flagged(LOCAL const float* scores, LOCAL const u32* flags, u32 want, u32 count) {
    u32 best = count;
    for (u32 i = 0; i < count; i++)
        if (flags[i] == want && (best == count || scores[i] > scores[best])) best = i;
    return best;
}

DEVICE void moe_select_impl(IN logits, View vl, IN bias, View vb, OUT o, View vo, u32 rows,
                            u32 experts, u32 top_k, u32 n_group, u32 topk_group, GLOBAL u32* status,
                            LOCAL float* scores, LOCAL u32* chosen, LOCAL float* group_scores,
                            LOCAL u32* kept) {
    const u64 r = group_row();
    if (r >= rows) return;
    for (u32 e = LOCAL_ID; e < experts; e += GLMHAL_BLOCK) {
        scores[e] = sigmoid(load(DT_F32, logits, vl, at(vl, r * experts + e))) +
                    load(DT_F32, bias, vb, at(vb, e));
    }
    SYNC();
    if (LOCAL_ID != 0) return;
    // Flag 2: not a candidate (its group is not kept) until groups are chosen.
    for (u32 e = 0; e < experts; e++) chosen[e] = n_group > 1 ? 2u : 0u;
    GLOBAL i32* out = (GLOBAL i32*)o;
    int nan = 0;
    for (u32 e = 0; e < experts; e++) nan |= scores[e] != scores[e];
    if (nan) {
        ATOMIC_MAX(&status[0], STATUS_ROUTER_NON_FINITE);
        status[1] = (u32)r;
        for (u32 j = 0; j < top_k; j++) out[vo.offset + at(vo, r * top_k + j)] = (i32)j;
        return;
    }
    const u32 per = experts / n_group;
    if (n_group > 1) {
        // A group's score: its two best experts' scores, summed.
        for (u32 g = 0; g < n_group; g++) {
            // Indices, not a sentinel value, so infinite scores sum as they are.
            u32 best = experts, second = experts;
            for (u32 e = g * per; e < (g + 1) * per; e++) {
                if (best == experts || scores[e] > scores[best]) {
                    second = best;
                    best = e;
                } else if (second == experts || scores[e] > scores[second]) {
                    second = e;
                }
            }
            group_scores[g] = scores[best] + scores[second];
            kept[g] = 0u;
        }
        for (u32 s = 0; s < topk_group; s++) {
            const u32 g = best_flagged(group_scores, kept, 0u, n_group);
            kept[g] = 1u;
            for (u32 e = g * per; e < (g + 1) * per; e++) chosen[e] = 0u;
        }
    }
    for (u32 s = 0; s < top_k; s++) chosen[best_flagged(scores, chosen, 0u, experts)] = 1u;
    u32 j = 0;
    for (u32 e = 0; e < experts; e++)
        if (chosen[e] == 1u) out[vo.offset + at(vo, r * top_k + j++)] = (i32)e;
}

DEVICE void moe_weights_impl(IN logits, View vl, IN ids, View vids, OUT o, View vo, u32 rows,
                             u32 experts, u32 k, int normalize, float scale, GLOBAL u32* status) {
    GRID_STRIDE(r, rows) {
        float sum = 0.0f;
        for (u32 j = 0; j < k; j++) {
            const u32 id = (u32)load_i32(ids, vids, at(vids, r * k + j));
            if (id < experts) {
                sum += sigmoid(load(DT_F32, logits, vl, at(vl, r * experts + id)));
            } else {
                ATOMIC_MAX(&status[0], STATUS_WEIGHT_ID_OUT_OF_RANGE);
                status[1] = id;
            }
        }
        const float denom = normalize ? sum + 1e-20f : 1.0f;
        for (u32 j = 0; j < k; j++) {
            const u32 id = (u32)load_i32(ids, vids, at(vids, r * k + j));
            const float s = id < experts ? sigmoid(load(DT_F32, logits, vl, at(vl, r * experts + id))) : 0.0f;
            store(DT_F32, o, vo, at(vo, r * k + j), s / denom * scale);
        }
    }
}

#define MAT_MUL_ID(W, X, O)                                                                        \
    KERNEL(mat_mul_id_##X##_##W##_##O)(IN x, View vx, IN w, View vw, IN ids, View vids, OUT o,     \
                                       View vo, u64 pairs, u32 rows, u32 chosen, u32 experts,      \
                                       u32 n, u32 k, GLOBAL u32* status) {                         \
        SHARED float scratch[GLMHAL_OPENCL ? GLMHAL_BLOCK : 1];                                    \
        mat_mul_id_impl(DT_##X, DT_##W, DT_##O, x, vx, w, vw, ids, vids, o, vo, pairs, rows,      \
                        chosen, experts, n, k, status, scratch);                                   \
    }
#define MAT_MUL_ID_W(X, O) WEIGHTS_3(MAT_MUL_ID, X, O)
#define MAT_MUL_ID_X(O, _) FLOATS_2(MAT_MUL_ID_W, O)
FLOATS_1(MAT_MUL_ID_X, _)

KERNEL(moe_select)(IN logits, View vl, IN bias, View vb, OUT o, View vo, u32 rows, u32 experts,
                   u32 top_k, u32 n_group, u32 topk_group, GLOBAL u32* status) {
    SHARED float scores[MOE_MAX_EXPERTS];
    SHARED u32 chosen[MOE_MAX_EXPERTS];
    SHARED float group_scores[MOE_MAX_EXPERTS / 2];
    SHARED u32 kept[MOE_MAX_EXPERTS / 2];
    moe_select_impl(logits, vl, bias, vb, o, vo, rows, experts, top_k, n_group, topk_group, status,
                    scores, chosen, group_scores, kept);
}

KERNEL(moe_weights)(IN logits, View vl, IN ids, View vids, OUT o, View vo, u32 rows, u32 experts,
                    u32 k, int normalize, float scale, GLOBAL u32* status) {
    moe_weights_impl(logits, vl, ids, vids, o, vo, rows, experts, k, normalize, scale, status);
}
