//! attention: one task per (query, head), f32 scores and softmax.
//!
//! Keys and values are read from the cache as they are stored: K rows of
//! f32/f16/bf16 go straight to the dot products (converted in registers),
//! and each V row is converted into a row of scratch as it is used. A
//! decode step therefore never copies the cache, which at long contexts
//! would be megabytes per layer per token.

use glmhal_hal::{DType, Result};
use rayon::prelude::*;

use super::{dot, simd, In, Out, Scratch};

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
    let group = nh / nkv;
    let past = s - t;
    let scale = scale as f32;
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
