// attention_<q>_<kv>_<o>: softmax(scale·q·kᵀ, causal)·v with grouped KV heads,
// for decode and prefill. One block of GLMHAL_BLOCK threads per (query,
// head): Q is scaled first (GLM-4's scores overflow f16 otherwise) and kept
// in shared memory; keys come in tiles of GLMHAL_BLOCK, one score per
// thread; an online f32 softmax rescales the running sums per tile; thread d
// accumulates output dim d. Query t sits at position keys - tokens + t.
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
