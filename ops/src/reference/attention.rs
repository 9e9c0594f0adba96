//! attention: causal scaled dot-product with grouped KV heads.

use glmhal_hal::HostTensor;

pub(super) fn attention(
    q: &HostTensor,
    k: &HostTensor,
    v: &HostTensor,
    scale: f64,
    causal: bool,
) -> Vec<f64> {
    let (t, nh, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2]);
    let (s, nkv) = (k.desc.shape[0], k.desc.shape[1]);
    let group = nh / nkv;
    let (qs, ks, vs) = (q.to_f64(), k.to_f64(), v.to_f64());
    let past = s - t;
    let mut out = vec![0.0; t * nh * d];
    let mut scores = vec![0.0f64; s];
    for ti in 0..t {
        let visible = if causal { past + ti + 1 } else { s };
        for h in 0..nh {
            let g = h / group;
            let qh = &qs[(ti * nh + h) * d..(ti * nh + h + 1) * d];
            for (j, sc) in scores[..visible].iter_mut().enumerate() {
                let kh = &ks[(j * nkv + g) * d..(j * nkv + g + 1) * d];
                *sc = qh.iter().zip(kh).map(|(a, b)| a * scale * b).sum();
            }
            let max = scores[..visible]
                .iter()
                .cloned()
                .fold(f64::NEG_INFINITY, f64::max);
            let mut denom = 0.0;
            for sc in &mut scores[..visible] {
                *sc = (*sc - max).exp();
                denom += *sc;
            }
            let o = &mut out[(ti * nh + h) * d..(ti * nh + h + 1) * d];
            for (j, p) in scores[..visible].iter().enumerate() {
                let vh = &vs[(j * nkv + g) * d..(j * nkv + g + 1) * d];
                for (oi, vi) in o.iter_mut().zip(vh) {
                    *oi += p / denom * vi;
                }
            }
        }
    }
    out
}
