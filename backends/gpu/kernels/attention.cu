// attention_<q>_<kv>_<o>: softmax(scale·q·kᵀ, causal)·v with grouped KV heads,
// for views whose rows are not contiguous. One block of GLMHAL_BLOCK threads
// per (query, head): Q is
// scaled first (GLM-4's scores overflow f16 otherwise) and kept in shared
// memory; keys come in tiles of GLMHAL_BLOCK, one score per thread; an
// online f32 softmax rescales the running sums per tile; thread d
// accumulates output dim d. Query t sits at position keys - tokens + t.
//
// attention_split_<q>_<kv>_<o> and attention_combine_<o>: everything else,
// flash-decoding where there are few queries. The visible keys are split
// into chunks across blocks (one chunk when the queries alone fill the
// device); each
// block holds every query head of one KV head (or a share of them, at most
// SPLIT_HEADS × dim values), so each key and value row is read once per
// query and KV head, not once per query head. A block keeps its own
// running maximum, sum and weighted values per head (online softmax) and
// writes them to the workspace; the combine kernel rescales the chunks to
// the global maximum and divides. With one chunk the split kernel writes
// the output itself. Rows are addressed through the views' strides (a
// multiply-add per row, no division).
#include "compat.h"

#define GLMHAL_MAX_HEAD_DIM 256

DEVICE void attention_impl(const int Q, const int KV, const int O, IN q, View vq, IN k, View vk,
                           IN v, View vv, OUT o, View vo, u32 tokens, u32 heads, u32 dim, u32 keys,
                           u32 kv_heads, float scale, int causal, LOCAL float* qs, LOCAL float* w,
                           LOCAL float* scratch) {
    const u64 e = group_row();
    if (e >= (u64)tokens * heads) return;
    const u32 lid = LOCAL_ID;
    const u32 t = (u32)(e / heads), h = (u32)(e % heads), g = h / (heads / kv_heads);
    const u32 visible = causal ? keys - tokens + t + 1 : keys;
    for (u32 d = lid; d < dim; d += GLMHAL_BLOCK)
        qs[d] = load(Q, q, vq, at(vq, ((u64)t * heads + h) * dim + d)) * scale;
    SYNC();
    float acc = 0.0f, m = -3.402823466e38f, l = 0.0f;
    for (u32 tile = 0; tile < visible; tile += GLMHAL_BLOCK) {
        const u32 j = tile + lid;
        float s = -3.402823466e38f;
        if (j < visible) {
            s = 0.0f;
            for (u32 d = 0; d < dim; d++) s += qs[d] * load(KV, k, vk, at(vk, ((u64)j * kv_heads + g) * dim + d));
        }
        const float m_new = fmaxf(m, block_max(s, scratch));
        w[lid] = j < visible ? expf(s - m_new) : 0.0f;
        SYNC();
        const float corr = expf(m - m_new);
        const u32 count = min((u32)GLMHAL_BLOCK, visible - tile);
        float tile_sum = 0.0f;
        for (u32 jj = 0; jj < count; jj++) tile_sum += w[jj];
        l = l * corr + tile_sum;
        if (lid < dim) {
            float a = acc * corr;
            for (u32 jj = 0; jj < count; jj++)
                a += w[jj] * load(KV, v, vv, at(vv, ((u64)(tile + jj) * kv_heads + g) * dim + lid));
            acc = a;
        }
        m = m_new;
        SYNC();
    }
    if (lid < dim) store(O, o, vo, at(vo, ((u64)t * heads + h) * dim + lid), acc / l);
}

#define ATTENTION(KV, Q, O)                                                                        \
    KERNEL(attention_##Q##_##KV##_##O)(IN q, View vq, IN k, View vk, IN v, View vv, OUT o, View vo, \
                                       u32 tokens, u32 heads, u32 dim, u32 keys, u32 kv_heads,     \
                                       float scale, int causal) {                                  \
        SHARED float qs[GLMHAL_MAX_HEAD_DIM];                                                      \
        SHARED float w[GLMHAL_BLOCK];                                                              \
        SHARED float scratch[GLMHAL_BLOCK];                                                        \
        attention_impl(DT_##Q, DT_##KV, DT_##O, q, vq, k, vk, v, vv, o, vo, tokens, heads, dim,    \
                       keys, kv_heads, scale, causal, qs, w, scratch);                             \
    }
#define ATTENTION_KV(Q, O) FLOATS_3(ATTENTION, Q, O)
#define ATTENTION_Q(O, _) FLOATS_2(ATTENTION_KV, O)
FLOATS_1(ATTENTION_Q, _)

// Shared-memory budget of the split kernel (floats): query heads × dim and
// keys per tile × dim each at most SPLIT_VALUES.
#define SPLIT_VALUES 2048
#define SPLIT_HEADS 32
#define SPLIT_KEYS 32

// Where row r, head h of a [rows, heads, dim] view starts (elements past its offset).
DEVICE u64 row_head(View v, u32 r, u32 h) { return (u64)r * v.s1 + (u64)h * v.s2; }

// Loads keys [j0, j0 + count) of KV head g into tile (count × dim floats).
DEVICE void load_tile(const int KV, IN p, View v, u32 j0, u32 count, u32 g, u32 dim, LOCAL float* tile) {
    for (u32 i = LOCAL_ID; i < count * dim; i += GLMHAL_BLOCK) {
        const u32 jj = i / dim, d = i % dim;
        tile[i] = load(KV, p, v, row_head(v, j0 + jj, g) + (u64)d * v.col_stride);
    }
}

DEVICE void attention_split_impl(const int Q, const int KV, const int O, IN q, View vq, IN k, View vk,
                                 IN v, View vv, OUT o, View vo, OUT part, u32 tokens, u32 heads,
                                 u32 dim, u32 keys, u32 kv_heads, float scale, int causal, u32 chunk,
                                 u32 head_chunk, int direct, LOCAL float* qs, LOCAL float* tile,
                                 LOCAL float* sc, LOCAL float* acc, LOCAL float* run) {
    const u32 group = heads / kv_heads, chunks_per_group = (group + head_chunk - 1) / head_chunk;
    const u32 g = GROUP_ID(0) / chunks_per_group, hc = GROUP_ID(0) % chunks_per_group;
    const u32 split = GROUP_ID(1), t = GROUP_ID(2), splits = NUM_GROUPS(1);
    const u32 h0 = g * group + hc * head_chunk, nh = min(head_chunk, group - hc * head_chunk);
    const u32 visible = causal ? keys - tokens + t + 1 : keys;
    const u32 j0 = split * chunk, j1 = min(j0 + chunk, visible);
    const u32 tile_keys = min((u32)SPLIT_KEYS, (u32)SPLIT_VALUES / dim);
    LOCAL float* m = run;
    LOCAL float* l = run + SPLIT_HEADS;
    LOCAL float* corr = run + 2 * SPLIT_HEADS;
    for (u32 i = LOCAL_ID; i < nh * dim; i += GLMHAL_BLOCK) {
        const u32 hh = i / dim, d = i % dim;
        qs[i] = load(Q, q, vq, row_head(vq, t, h0 + hh) + (u64)d * vq.col_stride) * scale;
        acc[i] = 0.0f;
    }
    if (LOCAL_ID < nh) {
        m[LOCAL_ID] = -3.402823466e38f;
        l[LOCAL_ID] = 0.0f;
    }
    SYNC();
    for (u32 jt = j0; jt < j1; jt += tile_keys) {
        const u32 count = min(tile_keys, j1 - jt);
        load_tile(KV, k, vk, jt, count, g, dim, tile);
        SYNC();
        for (u32 i = LOCAL_ID; i < nh * count; i += GLMHAL_BLOCK) {
            const u32 hh = i / count, jj = i % count;
            float s = 0.0f;
            for (u32 d = 0; d < dim; d++) s += qs[hh * dim + d] * tile[jj * dim + d];
            sc[hh * SPLIT_KEYS + jj] = s;
        }
        SYNC();
        if (LOCAL_ID < nh) {
            const u32 hh = LOCAL_ID;
            float mx = m[hh];
            for (u32 jj = 0; jj < count; jj++) mx = fmaxf(mx, sc[hh * SPLIT_KEYS + jj]);
            float sum = 0.0f;
            for (u32 jj = 0; jj < count; jj++) {
                const float e = expf(sc[hh * SPLIT_KEYS + jj] - mx);
                sc[hh * SPLIT_KEYS + jj] = e;
                sum += e;
            }
            corr[hh] = expf(m[hh] - mx);
            l[hh] = l[hh] * corr[hh] + sum;
            m[hh] = mx;
        }
        load_tile(KV, v, vv, jt, count, g, dim, tile);
        SYNC();
        for (u32 i = LOCAL_ID; i < nh * dim; i += GLMHAL_BLOCK) {
            const u32 hh = i / dim, d = i % dim;
            float a = acc[i] * corr[hh];
            for (u32 jj = 0; jj < count; jj++) a += sc[hh * SPLIT_KEYS + jj] * tile[jj * dim + d];
            acc[i] = a;
        }
        SYNC();
    }
    for (u32 i = LOCAL_ID; i < nh * dim; i += GLMHAL_BLOCK) {
        const u32 hh = i / dim, d = i % dim;
        if (direct) {
            store(O, o, vo, row_head(vo, t, h0 + hh) + (u64)d * vo.col_stride, acc[i] / l[hh]);
        } else {
            GLOBAL float* p = (GLOBAL float*)part + (((u64)t * heads + h0 + hh) * splits + split) * (dim + 2);
            p[2 + d] = acc[i];
            if (d == 0) {
                p[0] = m[hh];
                p[1] = l[hh];
            }
        }
    }
}

DEVICE void attention_combine_impl(const int O, IN part, OUT o, View vo, u32 tokens, u32 heads,
                                   u32 dim, u32 splits) {
    const u64 e = group_row();
    if (e >= (u64)tokens * heads) return;
    const u32 t = (u32)(e / heads), h = (u32)(e % heads);
    GLOBAL const float* p = (GLOBAL const float*)part + e * splits * (dim + 2);
    float mx = -3.402823466e38f;
    for (u32 s = 0; s < splits; s++) mx = fmaxf(mx, p[s * (dim + 2)]);
    float sum = 0.0f;
    for (u32 s = 0; s < splits; s++) sum += p[s * (dim + 2) + 1] * expf(p[s * (dim + 2)] - mx);
    for (u32 d = LOCAL_ID; d < dim; d += GLMHAL_BLOCK) {
        float a = 0.0f;
        for (u32 s = 0; s < splits; s++) a += p[s * (dim + 2) + 2 + d] * expf(p[s * (dim + 2)] - mx);
        store(O, o, vo, row_head(vo, t, h) + (u64)d * vo.col_stride, a / sum);
    }
}

#define ATTENTION_SPLIT(KV, Q, O)                                                                  \
    KERNEL(attention_split_##Q##_##KV##_##O)(IN q, View vq, IN k, View vk, IN v, View vv, OUT o,    \
                                             View vo, OUT part, u32 tokens, u32 heads, u32 dim,    \
                                             u32 keys, u32 kv_heads, float scale, int causal,      \
                                             u32 chunk, u32 head_chunk, int direct) {              \
        SHARED float qs[SPLIT_VALUES];                                                             \
        SHARED float tile[SPLIT_VALUES];                                                           \
        SHARED float sc[SPLIT_HEADS * SPLIT_KEYS];                                                 \
        SHARED float acc[SPLIT_VALUES];                                                            \
        SHARED float run[3 * SPLIT_HEADS];                                                         \
        attention_split_impl(DT_##Q, DT_##KV, DT_##O, q, vq, k, vk, v, vv, o, vo, part, tokens,     \
                             heads, dim, keys, kv_heads, scale, causal, chunk, head_chunk, direct,  \
                             qs, tile, sc, acc, run);                                              \
    }
#define ATTENTION_SPLIT_KV(Q, O) FLOATS_3(ATTENTION_SPLIT, Q, O)
#define ATTENTION_SPLIT_Q(O, _) FLOATS_2(ATTENTION_SPLIT_KV, O)
FLOATS_1(ATTENTION_SPLIT_Q, _)

#define ATTENTION_COMBINE(O, _)                                                                    \
    KERNEL(attention_combine_##O)(IN part, OUT o, View vo, u32 tokens, u32 heads, u32 dim,         \
                                  u32 splits) {                                                    \
        attention_combine_impl(DT_##O, part, o, vo, tokens, heads, dim, splits);                   \
    }
FLOATS_1(ATTENTION_COMBINE, _)
