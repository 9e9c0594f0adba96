//! attention: one task per (query, head), f32 scores and softmax.

use glmhal_hal::Result;
use rayon::prelude::*;

use super::{dot, In, Out, Scratch};

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
    let (qs, ks, vs) = (q.to_f32(), k.to_f32(), v.to_f32());
    let mut result = Scratch::filled(t * nh * d, 0.0f32);
    result.par_chunks_mut(d).enumerate().for_each_init(
        || (Scratch::filled(s, 0.0f32), Scratch::filled(d, 0.0f32)),
        |(scores, qh), (th, o)| {
            let (ti, h) = (th / nh, th % nh);
            let g = h / group;
            // Q is scaled before Q·Kᵀ so large GLM activations cannot overflow the scores.
            for (dst, src) in qh.iter_mut().zip(&qs[th * d..(th + 1) * d]) {
                *dst = src * scale;
            }
            let visible = if causal { past + ti + 1 } else { s };
            let mut max = f32::NEG_INFINITY;
            for (j, sc) in scores[..visible].iter_mut().enumerate() {
                *sc = dot(qh, &ks[(j * nkv + g) * d..(j * nkv + g + 1) * d]);
                max = max.max(*sc);
            }
            let mut denom = 0.0f32;
            for sc in &mut scores[..visible] {
                *sc = (*sc - max).exp();
                denom += *sc;
            }
            let inv = 1.0 / denom;
            for (j, p) in scores[..visible].iter().enumerate() {
                let vh = &vs[(j * nkv + g) * d..(j * nkv + g + 1) * d];
                let w = p * inv;
                for (oi, vi) in o.iter_mut().zip(vh) {
                    *oi += w * vi;
                }
            }
        },
    );
    out.store(&result);
    Ok(())
}
