//! attention: f32 scores and softmax, in one of two ways.
//!
//! A few queries (decode): one task per (query, KV head, chunk of
//! [`CHUNK`] positions), each covering every query head that shares the KV
//! head, so a key or value row is read once for the whole group (GLM
//! shares each KV head among 8 or 16 query heads). A task keeps its own
//! softmax maximum and sum, and the chunks of a query are merged after
//! (the split that lets long contexts use every core). Keys and values are
//! read from the cache as they are stored, so a decode step never copies
//! the cache, which at long contexts would be megabytes per layer per
//! token. With AVX-512 and heads of 16 to 256 values, a task is one call
//! of [`simd::attend`] (rows converted in registers, outputs held in
//! registers across the run); elsewhere K rows of f32/f16/bf16 go to the
//! dot products and each V row is converted into a row of scratch as it
//! is used.
//!
//! Many queries (a prompt): per head, two matrix products on the GEMM
//! (scores `Q·Kᵀ`, then probabilities times values), blocks of queries at a
//! time, each block against only the positions its last query sees when
//! causal. A prompt of `t` tokens has `t²/2` scores per head, which the
//! per-query dot products computed one key row at a time.

use glmhal_hal::{DType, Result, TensorDesc};
use rayon::prelude::*;
use smallvec::SmallVec;

use super::matmul::{product, FUSED_MAX_ROWS};
use super::simd::{self, attend};
use super::{f32_bytes, In, Out, Scratch};

/// Queries from which attention runs as matrix products (the products
/// take the GEMM above [`FUSED_MAX_ROWS`] rows).
const PRODUCTS_FROM: usize = FUSED_MAX_ROWS + 1;
/// Queries per block of the products: bounds the scores held at once
/// (`QUERY_BLOCK × keys` f32 per head in flight).
const QUERY_BLOCK: usize = 256;
/// Cached positions per decode task.
const CHUNK: usize = 256;

/// The sizes both ways need: `t` queries of `nh` heads of `d` over `s`
/// positions of `nkv` KV heads (validated by the catalogue).
#[derive(Clone, Copy)]
struct Sizes {
    t: usize,
    nh: usize,
    d: usize,
    s: usize,
    nkv: usize,
    /// Query heads per KV head.
    group: usize,
    /// Positions before the first query.
    past: usize,
}

/// Whether attention of `q` over keys `k` rounds the (scaled) queries to
/// bf16: many queries go to the products, whose first multiplies them with
/// the keys as stored (see [`super::matmul::rounds_activations_to_bf16`]).
pub(crate) fn rounds_queries_to_bf16(q: &TensorDesc, k: &TensorDesc) -> bool {
    let (t, d) = (q.shape[0], q.shape[2]);
    let keys = TensorDesc::strided(k.dtype, &[k.shape[0], d], &[k.strides[0], k.strides[2]], 0);
    t >= PRODUCTS_FROM && super::matmul::rounds_activations_to_bf16(t.min(QUERY_BLOCK), &keys)
}

pub(super) fn attention(
    q: &In<'_>,
    k: &In<'_>,
    v: &In<'_>,
    scale: f64,
    causal: bool,
    out: &mut Out<'_>,
) -> Result<()> {
    let (t, nh, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2]);
    let (s, nkv) = (k.desc.shape[0], k.desc.shape[1]);
    let sizes = Sizes {
        t,
        nh,
        d,
        s,
        nkv,
        group: nh / nkv,
        past: s - t,
    };
    let scale = scale as f32;
    if t >= PRODUCTS_FROM {
        return by_products(q, k, v, sizes, scale, causal, out);
    }
    by_positions(q, k, v, sizes, scale, causal, out);
    Ok(())
}

/// The rows of a `[s, nkv, d]` cache as a decode task reads them.
enum CacheRows<'a> {
    /// f32/f16/bf16 rows stored packed: read in place.
    Stored(&'a In<'a>),
    /// Any other layout (strided rows, quantized), converted to f32 once
    /// (`nkv` heads per position).
    Converted { values: Scratch<f32>, nkv: usize },
}

impl<'a> CacheRows<'a> {
    fn new(c: &'a In<'a>) -> Self {
        let packed = c.desc.rows_contiguous()
            && matches!(c.desc.dtype, DType::F32 | DType::F16 | DType::Bf16);
        if packed {
            CacheRows::Stored(c)
        } else {
            CacheRows::Converted {
                values: c.to_f32(),
                nkv: c.desc.shape[1],
            }
        }
    }

    /// Rows `(j0.., g)` as stored, for the register kernel of
    /// [`attend`] where it runs on this CPU.
    fn run(&self, j0: usize, g: usize, d: usize) -> Option<attend::PositionRun<'_>> {
        match self {
            CacheRows::Stored(c) if attend::applies(d) => {
                let desc = &c.desc;
                let at = desc.byte_at(j0 * desc.strides[0] + g * desc.strides[1]);
                Some(attend::PositionRun {
                    dtype: desc.dtype,
                    bytes: &c.bytes[at..],
                    stride: desc.byte_at(desc.strides[0]) - desc.byte_at(0),
                })
            }
            _ => None,
        }
    }

    /// Whether a position's KV heads of `d` values are stored one right
    /// after the other.
    fn heads_adjacent(&self, d: usize) -> bool {
        match self {
            CacheRows::Stored(c) => c.desc.strides[1] == d,
            CacheRows::Converted { .. } => false,
        }
    }

    /// Row `(j, g)` (`d` values) as stored: its dtype and bytes.
    fn bytes(&self, j: usize, g: usize, d: usize) -> (DType, &[u8]) {
        match self {
            CacheRows::Stored(c) => {
                let desc = &c.desc;
                let at = desc.byte_at(j * desc.strides[0] + g * desc.strides[1]);
                (desc.dtype, &c.bytes[at..at + desc.dtype.bytes_for(d)])
            }
            CacheRows::Converted { values, nkv } => {
                (DType::F32, f32_bytes(&values[(j * nkv + g) * d..][..d]))
            }
        }
    }
}

/// Attention of a few queries (see the module's notes).
fn by_positions(
    q: &In<'_>,
    k: &In<'_>,
    v: &In<'_>,
    sizes: Sizes,
    scale: f32,
    causal: bool,
    out: &mut Out<'_>,
) {
    let tasks = PositionTasks::new(q, k, v, sizes, scale, causal);
    let Sizes { t, d, group, .. } = sizes;
    let (together, chunks, blocks) = (tasks.together, tasks.chunks, tasks.blocks);
    let count = t * chunks * blocks;
    // Each task's share, in pooled buffers (a step allocates nothing): per
    // query head of its KV heads the softmax maximum and sum over its
    // positions, and the unnormalized output; laid out by (query, chunk,
    // KV head, query head of the group) whatever the blocks.
    let heads = together * group;
    let mut maxima = Scratch::filled(count * heads, f32::NEG_INFINITY);
    let mut sums = Scratch::filled(count * heads, 0.0f32);
    let mut outs = Scratch::filled(count * heads * d, 0.0f32);
    maxima
        .par_chunks_mut(heads)
        .zip(sums.par_chunks_mut(heads))
        .zip(outs.par_chunks_mut(heads * d))
        .enumerate()
        .for_each(|(i, ((max, sum), o))| {
            tasks.run(i, attend::RunShare { max, sum, out: o });
        });
    let result = merge_chunks(&maxima, &sums, &outs, sizes, chunks);
    out.store(&result);
}

/// Positions query `ti` of `sizes` sees.
fn visible(sizes: Sizes, causal: bool, ti: usize) -> usize {
    if causal {
        sizes.past + ti + 1
    } else {
        sizes.s
    }
}

/// What the decode tasks of [`by_positions`] read, and how the work is
/// divided among them.
struct PositionTasks<'a> {
    /// The queries in f32, unscaled.
    qs: Scratch<f32>,
    keys: CacheRows<'a>,
    values: CacheRows<'a>,
    sizes: Sizes,
    scale: f32,
    causal: bool,
    /// KV heads per task.
    together: usize,
    /// Chunks of positions per query (the same count for every query; a
    /// chunk past a query's last visible position is empty).
    chunks: usize,
    /// Blocks of `together` KV heads.
    blocks: usize,
}

impl<'a> PositionTasks<'a> {
    /// The tasks of `sizes.t` queries over the cache `k`, `v`.
    fn new(
        q: &In<'_>,
        k: &'a In<'a>,
        v: &'a In<'a>,
        sizes: Sizes,
        scale: f32,
        causal: bool,
    ) -> Self {
        let Sizes { t, d, nkv, .. } = sizes;
        let qs = q.to_f32();
        let (keys, values) = (CacheRows::new(k), CacheRows::new(v));
        // KV heads per task: all of them where the register kernel reads a
        // position's heads as one row (stored next to each other, as in the
        // model's cache), so the cache is read front to back; otherwise one.
        let together = match (keys.run(0, 0, d), values.run(0, 0, d)) {
            (Some(_), Some(_)) if keys.heads_adjacent(d) && values.heads_adjacent(d) => nkv,
            _ => 1,
        };
        PositionTasks {
            qs,
            keys,
            values,
            sizes,
            scale,
            causal,
            together,
            chunks: visible(sizes, causal, t - 1).div_ceil(CHUNK),
            blocks: nkv / together,
        }
    }

    /// Positions query `ti` sees.
    fn visible(&self, ti: usize) -> usize {
        visible(self.sizes, self.causal, ti)
    }

    /// Task `i` (query `ti`, chunk `c`, block of KV heads `b`) into its
    /// share: with [`attend`] where it runs, else by [`Self::by_dots`].
    fn run(&self, i: usize, share: attend::RunShare<'_>) {
        let Sizes { nh, d, group, .. } = self.sizes;
        let (together, chunks, blocks) = (self.together, self.chunks, self.blocks);
        let (ti, c, b) = (i / (chunks * blocks), i / blocks % chunks, i % blocks);
        let g = b * together;
        let (j0, j1) = (c * CHUNK, ((c + 1) * CHUNK).min(self.visible(ti)));
        if j0 >= j1 {
            return;
        }
        let len = j1 - j0;
        let heads = together * group;
        // The task's queries, scaled before Q·Kᵀ so large GLM
        // activations cannot overflow the scores.
        let mut qh = Scratch::filled(heads * d, 0.0f32);
        let first = (ti * nh + g * group) * d;
        for (dst, src) in qh.iter_mut().zip(&self.qs[first..first + heads * d]) {
            *dst = src * self.scale;
        }
        if let (Some(k_run), Some(v_run)) = (self.keys.run(j0, g, d), self.values.run(j0, g, d)) {
            let mut scores = Scratch::filled(attend::scores_len(group, together, len), 0.0f32);
            attend::attend(
                &qh,
                group,
                together,
                d,
                &k_run,
                &v_run,
                len,
                &mut scores,
                share,
            );
            return;
        }
        self.by_dots(&qh, g, (j0, j1), share);
    }

    /// Positions `j0..j1` of KV head `g` against its scaled queries `qh`
    /// without the register kernel: the scores by dot products, tile by
    /// tile of query heads, then each value row converted and added in.
    fn by_dots(&self, qh: &[f32], g: usize, (j0, j1): (usize, usize), share: attend::RunShare<'_>) {
        let attend::RunShare { max, sum, out: o } = share;
        let Sizes { d, group, .. } = self.sizes;
        let len = j1 - j0;
        let queries: SmallVec<[&[f32]; 16]> = qh.chunks_exact(d).collect();
        // Scores, head by head: row h holds positions j0..j1.
        let mut scores = Scratch::filled(group * len, 0.0f32);
        let mut dots = [0.0f32; simd::TILE];
        for j in j0..j1 {
            let (dtype, key) = self.keys.bytes(j, g, d);
            for (h0, tile) in (0..).step_by(simd::TILE).zip(queries.chunks(simd::TILE)) {
                simd::dot_rows(dtype, key, tile, &mut dots);
                for (i, dot) in dots[..tile.len()].iter().enumerate() {
                    scores[(h0 + i) * len + j - j0] = *dot;
                }
            }
        }
        for ((row, m), l) in scores
            .chunks_exact_mut(len)
            .zip(max.iter_mut())
            .zip(sum.iter_mut())
        {
            *m = row.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
            *l = simd::exp_shifted_in_place(row, *m);
        }
        let mut row = Scratch::filled(d, 0.0f32);
        for j in j0..j1 {
            let (dtype, value) = self.values.bytes(j, g, d);
            simd::to_f32(dtype, value, &mut row);
            for (h, oh) in o.chunks_exact_mut(d).enumerate() {
                simd::axpy(scores[h * len + j - j0], &row, oh);
            }
        }
    }
}

/// Merges each query head's chunks of the tasks' shares, each rescaled to
/// their largest maximum, into the normalized `[t, nh, d]` output.
fn merge_chunks(
    maxima: &[f32],
    sums: &[f32],
    outs: &[f32],
    sizes: Sizes,
    chunks: usize,
) -> Scratch<f32> {
    let Sizes {
        t,
        nh,
        d,
        nkv,
        group,
        ..
    } = sizes;
    let mut result = Scratch::filled(t * nh * d, 0.0f32);
    result.par_chunks_mut(d).enumerate().for_each(|(at, o)| {
        let (ti, h) = (at / nh, at % nh);
        let (g, hh) = (h / group, h % group);
        let share = |c: usize| ((ti * chunks + c) * nkv + g) * group + hh;
        let largest = (0..chunks).fold(f32::NEG_INFINITY, |m, c| m.max(maxima[share(c)]));
        let mut total = 0.0f32;
        for c in 0..chunks {
            let i = share(c);
            if maxima[i] == f32::NEG_INFINITY {
                continue; // an empty chunk
            }
            let factor = (maxima[i] - largest).exp();
            total += factor * sums[i];
            simd::axpy(factor, &outs[i * d..(i + 1) * d], o);
        }
        let inv = 1.0 / total;
        o.iter_mut().for_each(|x| *x *= inv);
    });
    result
}

/// Attention of many queries as two products per head: for each KV head,
/// its values are transposed to f32 once, then for each query head of its
/// group and block of queries, `scores = (scale·Q)·Kᵀ`, a causal softmax
/// per row, and `out = P·V`.
fn by_products(
    q: &In<'_>,
    k: &In<'_>,
    v: &In<'_>,
    sizes: Sizes,
    scale: f32,
    causal: bool,
    out: &mut Out<'_>,
) -> Result<()> {
    let Sizes {
        t,
        nh,
        d,
        s,
        nkv,
        group,
        past,
    } = sizes;
    let qs = q.f32s();
    // Each KV head's values transposed to [d, s] f32 once: the second
    // product's weights for every query head of its group.
    let transposed: Vec<Scratch<f32>> = (0..nkv)
        .into_par_iter()
        .map(|g| {
            let mut vt = Scratch::filled(d * s, 0.0f32);
            let mut row = Scratch::filled(d, 0.0f32);
            for j in 0..s {
                v.read_row(j * nkv + g, &mut row);
                for (c, x) in row.iter().enumerate() {
                    vt[c * s + j] = *x;
                }
            }
            vt
        })
        .collect();
    // Query heads in parallel (a short prompt's products are small, so one
    // head's products alone would leave a core idle), each into its own [t, d].
    let heads: Vec<Scratch<f32>> = (0..nh)
        .into_par_iter()
        .map(|h| {
            let g = h / group;
            // Head g's first `reach` keys, a [reach, d] view of the cache as stored.
            let kd = &k.desc;
            let keys = |reach: usize| In {
                desc: TensorDesc::strided(
                    kd.dtype,
                    &[reach, d],
                    &[kd.strides[0], kd.strides[2]],
                    kd.byte_at(g * kd.strides[1]),
                ),
                bytes: k.bytes,
            };
            let values = In {
                desc: TensorDesc::contiguous(DType::F32, &[d, s]),
                bytes: f32_bytes(&transposed[g]),
            };
            let mut head = Scratch::filled(t * d, 0.0f32);
            for t0 in (0..t).step_by(QUERY_BLOCK) {
                let rows = QUERY_BLOCK.min(t - t0);
                let mut qh = Scratch::filled(rows * d, 0.0f32);
                for (i, dst) in qh.chunks_exact_mut(d).enumerate() {
                    let src = &qs[((t0 + i) * nh + h) * d..][..d];
                    // Q is scaled before Q·Kᵀ so large GLM activations cannot overflow the scores.
                    for (o, x) in dst.iter_mut().zip(src) {
                        *o = x * scale;
                    }
                }
                // Causal: the block's last query sees the first `reach`
                // positions, so the products skip the rest of the cache
                // (half the work of a fresh prompt).
                let reach = if causal { past + t0 + rows } else { s };
                let mut scores = Scratch::filled(rows * reach, 0.0f32);
                product(&qh, d, &keys(reach), None, &mut scores, rows, reach);
                scores
                    .par_chunks_mut(reach)
                    .enumerate()
                    .for_each(|(i, row)| {
                        let visible = if causal { past + t0 + i + 1 } else { s };
                        let (live, masked) = row.split_at_mut(visible);
                        simd::softmax_in_place(live);
                        masked.fill(0.0);
                    });
                // The first `reach` columns of the transposed values.
                let values = In {
                    desc: TensorDesc::strided(DType::F32, &[d, reach], &[s, 1], 0),
                    bytes: values.bytes,
                };
                product(
                    &scores,
                    reach,
                    &values,
                    None,
                    &mut head[t0 * d..(t0 + rows) * d],
                    rows,
                    d,
                );
            }
            head
        })
        .collect();
    let mut result = Scratch::filled(t * nh * d, 0.0f32);
    for (h, head) in heads.iter().enumerate() {
        for (i, src) in head.chunks_exact(d).enumerate() {
            result[(i * nh + h) * d..][..d].copy_from_slice(src);
        }
    }
    out.store(&result);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{quant, Rng};

    /// The first `s` positions of an f16 cache of `nkv` heads of `d`.
    fn cache(bytes: &[u8], s: usize, nkv: usize, d: usize) -> In<'_> {
        In {
            desc: TensorDesc::strided(DType::F16, &[s, nkv, d], &[nkv * d, d, 1], 0),
            bytes,
        }
    }

    /// Causal attention of `q` ([t, nh, d] f32) over `s` cached positions.
    fn run(
        q: &[f32],
        t: usize,
        kv: &(Vec<u8>, Vec<u8>),
        s: usize,
        heads: (usize, usize, usize),
    ) -> Vec<f32> {
        let (nh, nkv, d) = heads;
        let qb = quant::from_f32(DType::F32, q).unwrap();
        let mut out = vec![0u8; 4 * t * nh * d];
        attention(
            &In {
                desc: TensorDesc::contiguous(DType::F32, &[t, nh, d]),
                bytes: &qb,
            },
            &cache(&kv.0, s, nkv, d),
            &cache(&kv.1, s, nkv, d),
            (d as f64).powf(-0.5),
            true,
            &mut Out {
                desc: TensorDesc::contiguous(DType::F32, &[t, nh, d]),
                bytes: &mut out,
            },
        )
        .unwrap();
        quant::to_f32(DType::F32, &out, t * nh * d).unwrap()
    }

    #[test]
    fn decode_over_several_chunks_matches_a_plain_softmax() {
        // Two queries over 700 cached positions (three chunks, the last
        // partial), eight query heads sharing each of two KV heads.
        let (t, past, nh, nkv, d) = (2, 698, 16, 2, 64);
        let s = past + t;
        let mut rng = Rng::new(12);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect() };
        let q = random(t * nh * d);
        let (kf, vf) = (random(s * nkv * d), random(s * nkv * d));
        let kv = (
            quant::from_f32(DType::F16, &kf).unwrap(),
            quant::from_f32(DType::F16, &vf).unwrap(),
        );
        let (kq, vq) = (
            quant::to_f32(DType::F16, &kv.0, kf.len()).unwrap(),
            quant::to_f32(DType::F16, &kv.1, vf.len()).unwrap(),
        );
        let got = run(&q, t, &kv, s, (nh, nkv, d));
        let scale = 1.0 / (d as f64).sqrt();
        for ti in 0..t {
            for h in 0..nh {
                let g = h / (nh / nkv);
                let qh = &q[(ti * nh + h) * d..][..d];
                let seen = past + ti + 1;
                let scores: Vec<f64> = (0..seen)
                    .map(|j| {
                        let kj = &kq[(j * nkv + g) * d..][..d];
                        scale
                            * qh.iter()
                                .zip(kj)
                                .map(|(a, b)| *a as f64 * *b as f64)
                                .sum::<f64>()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for c in 0..d {
                    let want: f64 = (0..seen)
                        .map(|j| weights[j] * vq[(j * nkv + g) * d + c] as f64)
                        .sum::<f64>()
                        / total;
                    let g_ = got[(ti * nh + h) * d + c] as f64;
                    assert!(
                        (g_ - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "query {ti} head {h} dim {c}: {g_} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_block_of_queries_matches_one_query_at_a_time() {
        // 300 new queries after 20 cached positions (a prompt continued):
        // two blocks of queries, each against the positions it sees;
        // grouped heads, the products path against the per-query one.
        let (t, past, nh, nkv, d) = (300, 20, 8, 2, 64);
        let s = past + t;
        let mut rng = Rng::new(11);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect() };
        let q = random(t * nh * d);
        let kv = (
            quant::from_f32(DType::F16, &random(s * nkv * d)).unwrap(),
            quant::from_f32(DType::F16, &random(s * nkv * d)).unwrap(),
        );
        let block = run(&q, t, &kv, s, (nh, nkv, d));
        for i in 0..t {
            // Query i sees positions 0..past + i + 1: a cache of that length.
            let seen = past + i + 1;
            let one = run(&q[i * nh * d..(i + 1) * nh * d], 1, &kv, seen, (nh, nkv, d));
            for (a, b) in block[i * nh * d..(i + 1) * nh * d].iter().zip(&one) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "query {i}: {a} vs {b}"
                );
            }
        }
    }
}
