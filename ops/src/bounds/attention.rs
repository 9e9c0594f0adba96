//! Bounds of softmax and attention.
//!
//! Scores `sⱼ` carry errors `δsⱼ` (for attention, those of `scale·q·kⱼ`: a
//! dot product, the scale's own rounding, inputs rounded if declared).
//! `eⱼ = exp(sⱼ − m)` then carries `δsⱼ`, the rounding of `sⱼ − m`
//! (`u·|sⱼ − m|`), the declared error of `exp`, and the same again for an
//! online softmax that rescales partial sums by `exp(m_chunk − m)`. The
//! normalization makes only differences count: `pⱼ = eⱼ/Z` moves by
//! `pⱼ·(εⱼ − Σᵢ pᵢ·εᵢ)` for relative errors `εᵢ` of the `eᵢ`, plus the
//! summation error of `Z` (a sum of positive terms) and the division, both
//! common to every `pⱼ`. Attention's output `o = Σⱼ pⱼ·vⱼ` moves by
//! `Σᵢ pᵢ·(vᵢ − o)·εᵢ` (the derivative of `o` in `sᵢ`), `|o|` times the
//! common error, and its own accumulation over the keys; where the weights
//! are declared rounded before they multiply V, each `pⱼ` moves by half a
//! step of that format, so `o` by that times `|vⱼ|`.

use glmhal_hal::{Arithmetic, HostTensor};

use super::{Budget, Ctx, Perturbations, Sum};
use crate::reference::attention::Sizes;

/// Softmax weights with what each may be off by.
struct Weights {
    /// `pⱼ` over the visible keys.
    p: Vec<f64>,
    /// Per key, the relative error of `eⱼ`.
    rel: Vec<Budget>,
    /// Relative error common to every weight (the sum and the division).
    common: f64,
}

/// The weights of `scores` whose errors are `score_errors`.
fn weights(ctx: &Ctx, scores: &[f64], score_errors: &[Budget]) -> Weights {
    let u = ctx.u();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    // The smallest normal of the arithmetic: below it exp underflows, an
    // absolute error of up to that much.
    let tiny = match ctx.p.accumulate {
        Arithmetic::F16 => 2f64.powi(-14),
        Arithmetic::F64 => f64::MIN_POSITIVE,
        _ => 2f64.powi(-126),
    };
    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let mut z = Sum::default();
    for v in &e {
        z.push(*v);
    }
    let p: Vec<f64> = e.iter().map(|v| v / z.sum).collect();
    let rel = scores
        .iter()
        .zip(score_errors)
        .zip(&e)
        .map(|((s, ds), ev)| {
            let own = 2.0 * (ctx.function() + u * (s - max).abs())
                + if *ev > 0.0 { tiny / ev } else { 0.0 };
            *ds + Budget::det(own)
        })
        .collect();
    let common = z.rounding_of_sum(u).bound() / z.sum + ctx.function() + 2.0 * u;
    Weights { p, rel, common }
}

pub(super) fn softmax(ctx: &Ctx, x: &HostTensor, scale: f64, causal: bool) -> Vec<f64> {
    let (m, n) = (x.desc.shape[0], x.desc.shape[1]);
    let xs = x.to_f64();
    let u = ctx.u();
    let scale_error = representation_error(ctx, scale);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        let visible = if causal { i + n - m + 1 } else { n };
        let scores: Vec<f64> = xs[i * n..i * n + visible]
            .iter()
            .map(|v| v * scale)
            .collect();
        let errors: Vec<Budget> = scores
            .iter()
            .map(|s| Budget::det((u + scale_error) * s.abs()))
            .collect();
        let w = weights(ctx, &scores, &errors);
        let total = w
            .rel
            .iter()
            .zip(&w.p)
            .fold(Budget::default(), |acc, (r, p)| acc + r.times(*p));
        for (j, (p, r)) in w.p.iter().zip(&w.rel).enumerate() {
            // εⱼ enters with (1 − pⱼ), every other εᵢ with pᵢ.
            let others = Budget {
                det: total.det - r.det * p,
                var: (total.var - r.var * p * p).max(0.0),
            };
            let budget = (r.times(1.0 - p) + others).times(*p) + Budget::det(p * w.common);
            out[i * n + j] = ctx.finish(budget, *p);
        }
        for j in visible..n {
            out[i * n + j] = ctx.output(0.0);
        }
    }
    out
}

pub(super) fn attention(
    ctx: &Ctx,
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
    let u = ctx.u();
    let scale_error = representation_error(ctx, scale);
    let mut out = vec![0.0; t * nh * d];
    let mut scores = Vec::with_capacity(s);
    let mut errors = Vec::with_capacity(s);
    for ti in 0..t {
        let visible = sizes.visible(ti, causal);
        for h in 0..nh {
            let g = h / group;
            let qh = &qs[(ti * nh + h) * d..(ti * nh + h + 1) * d];
            scores.clear();
            errors.clear();
            for j in 0..visible {
                let kh = &ks[(j * nkv + g) * d..(j * nkv + g + 1) * d];
                let mut dot = Sum::default();
                let mut rounded = Perturbations::default();
                for (a, b) in qh.iter().zip(kh) {
                    dot.push(a * b);
                    // The query may be rounded after it is scaled.
                    let query = ctx
                        .input_rounding(q.desc.dtype, *a)
                        .max(ctx.declared_rounding(a * scale) / scale);
                    rounded.push(query * b.abs() + ctx.input_rounding(k.desc.dtype, *b) * a.abs());
                }
                let sc = dot.sum * scale;
                // The dot product, scaling q (or the score) once more, the
                // scale's own representation, rounded inputs.
                let budget = (dot.rounding(u) + dot.term_rounding(u) + rounded.budget())
                    .times(scale)
                    + Budget::det((u + scale_error) * sc.abs());
                scores.push(sc);
                errors.push(budget);
            }
            let w = weights(ctx, &scores, &errors);
            let o = &mut out[(ti * nh + h) * d..(ti * nh + h + 1) * d];
            for (dim, o) in o.iter_mut().enumerate() {
                let value = |j: usize| vs[(j * nkv + g) * d + dim];
                let mut acc = Sum::default();
                for (j, p) in w.p.iter().enumerate() {
                    acc.push(p * value(j));
                }
                let exact = acc.sum;
                let mut budget = acc.rounding(u) + Budget::det(exact.abs() * w.common);
                let mut spread = Budget::default();
                let mut divided = Perturbations::default();
                for (j, (p, r)) in w.p.iter().zip(&w.rel).enumerate() {
                    let vj = value(j);
                    spread += r.times(p * (vj - exact));
                    divided.push(
                        p * (u * vj.abs() + ctx.input_rounding(v.desc.dtype, vj))
                            + ctx.probability_rounding(*p) * vj.abs(),
                    );
                }
                budget += spread + divided.budget();
                *o = ctx.finish(budget, exact);
            }
        }
    }
    out
}

/// Relative error of `x` stored in the declared arithmetic.
fn representation_error(ctx: &Ctx, x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        ((ctx.p.accumulate.round(x) - x) / x).abs()
    }
}
