//! attention: f32 scores and softmax, in one of two ways.
//!
//! A few queries (decode): one task per (query, head). Keys and values are
//! read from the cache as they are stored: K rows of f32/f16/bf16 go
//! straight to the dot products (converted in registers), and each V row is
//! converted into a row of scratch as it is used. A decode step therefore
//! never copies the cache, which at long contexts would be megabytes per
//! layer per token.
//!
//! Many queries (a prompt): per head, two matrix products on the GEMM
//! (scores `Q·Kᵀ`, then probabilities times values), blocks of queries at a
//! time. A prompt of `t` tokens has `t²/2` scores per head, which the
//! per-query dot products computed one key row at a time.

use glmhal_hal::{DType, Result, TensorDesc};
use rayon::prelude::*;

use super::matmul::{product, FUSED_MAX_ROWS};
use super::{dot, f32_bytes, simd, In, Out, Scratch};

/// Queries from which attention runs as matrix products (the products
/// take the GEMM above [`FUSED_MAX_ROWS`] rows).
const PRODUCTS_FROM: usize = FUSED_MAX_ROWS + 1;
/// Queries per block of the products: bounds the scores held at once
/// (`QUERY_BLOCK × keys` f32 per head in flight).
const QUERY_BLOCK: usize = 256;

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
    let Sizes { group, past, .. } = sizes;
    let qs = q.to_f32();
    // Other key layouts (strided rows, quantized) are converted once.
    let keys_as_stored =
        k.desc.rows_contiguous() && matches!(k.desc.dtype, DType::F32 | DType::F16 | DType::Bf16);
    let converted_keys = (!keys_as_stored).then(|| k.to_f32());
    let key_bytes = k.desc.dtype.bytes_for(d);
    let score = |qh: &[f32], row: usize| match &converted_keys {
        Some(ks) => dot(qh, &ks[row * d..(row + 1) * d]),
        None => {
            let at = k.desc.byte_at(k.desc.row_start(row));
            let mut out = [0.0f32];
            simd::dot_rows(k.desc.dtype, &k.bytes[at..at + key_bytes], &[qh], &mut out);
            out[0]
        }
    };
    let mut result = Scratch::filled(t * nh * d, 0.0f32);
    result.par_chunks_mut(d).enumerate().for_each_init(
        || {
            (
                Scratch::filled(s, 0.0f32),
                Scratch::filled(d, 0.0f32),
                Scratch::filled(d, 0.0f32),
            )
        },
        |(scores, qh, vh), (th, o)| {
            let (ti, h) = (th / nh, th % nh);
            let g = h / group;
            // Q is scaled before Q·Kᵀ so large GLM activations cannot overflow the scores.
            for (dst, src) in qh.iter_mut().zip(&qs[th * d..(th + 1) * d]) {
                *dst = src * scale;
            }
            let visible = if causal { past + ti + 1 } else { s };
            let mut max = f32::NEG_INFINITY;
            for (j, sc) in scores[..visible].iter_mut().enumerate() {
                *sc = score(qh, j * nkv + g);
                max = max.max(*sc);
            }
            let mut denom = 0.0f32;
            for sc in &mut scores[..visible] {
                *sc = (*sc - max).exp();
                denom += *sc;
            }
            let inv = 1.0 / denom;
            for (j, p) in scores[..visible].iter().enumerate() {
                v.read_row(j * nkv + g, vh);
                let w = p * inv;
                for (oi, vi) in o.iter_mut().zip(vh.iter()) {
                    *oi += w * vi;
                }
            }
        },
    );
    out.store(&result);
    Ok(())
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
            // Head g's keys, a [s, d] view of the cache as stored.
            let kd = &k.desc;
            let keys = In {
                desc: TensorDesc::strided(
                    kd.dtype,
                    &[s, d],
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
                let mut scores = Scratch::filled(rows * s, 0.0f32);
                product(&qh, d, &keys, None, &mut scores, rows, s);
                scores.par_chunks_mut(s).enumerate().for_each(|(i, row)| {
                    let visible = if causal { past + t0 + i + 1 } else { s };
                    let (live, masked) = row.split_at_mut(visible);
                    simd::softmax_in_place(live);
                    masked.fill(0.0);
                });
                product(
                    &scores,
                    s,
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
    fn a_block_of_queries_matches_one_query_at_a_time() {
        // 40 new queries after 20 cached positions (a prompt continued),
        // grouped heads, the products path against the per-query one.
        let (t, past, nh, nkv, d) = (40, 20, 8, 2, 64);
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
