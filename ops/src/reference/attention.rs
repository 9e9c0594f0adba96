//! attention: causal scaled dot-product with grouped KV heads.

use glmhal_hal::HostTensor;

/// Attention's sizes: `t` queries of `nh` heads of `d` values over `s`
/// keys of `nkv` heads; query head `h` reads KV head `h / group`, and query
/// `t` sits at position `past + t`.
pub(crate) struct Sizes {
    pub t: usize,
    pub nh: usize,
    pub d: usize,
    pub s: usize,
    pub nkv: usize,
    pub group: usize,
    pub past: usize,
}

impl Sizes {
    /// The sizes of `q [T, nh, D]` over `k [S, nkv, D]`.
    pub fn of(q: &HostTensor, k: &HostTensor) -> Sizes {
        let (t, nh, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2]);
        let (s, nkv) = (k.desc.shape[0], k.desc.shape[1]);
        Sizes {
            t,
            nh,
            d,
            s,
            nkv,
            group: nh / nkv,
            past: s - t,
        }
    }

    /// Keys query `ti` sees.
    pub fn visible(&self, ti: usize, causal: bool) -> usize {
        if causal {
            self.past + ti + 1
        } else {
            self.s
        }
    }
}

pub(super) fn attention(
    q: &HostTensor,
    k: &HostTensor,
    v: &HostTensor,
    scale: f64,
    causal: bool,
) -> Vec<f64> {
    let sizes = Sizes::of(q, k);
    let Sizes {
        t,
        nh,
        d,
        s,
        nkv,
        group,
        ..
    } = sizes;
    let (qs, ks, vs) = (q.to_f64(), k.to_f64(), v.to_f64());
    let mut out = vec![0.0; t * nh * d];
    let mut scores = vec![0.0f64; s];
    for ti in 0..t {
        let visible = sizes.visible(ti, causal);
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
