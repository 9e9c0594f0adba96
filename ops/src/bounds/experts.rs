//! Bounds of the mixture-of-experts ops.
//!
//! - `mat_mul_id`: each output is one dot product of a row with a row of
//!   the expert it was routed to, bounded as `mat_mul` bounds it.
//! - `moe_weights`: `σ = 1/(1 + exp(−x))` carries the declared error of
//!   `exp`, a sum and a division: relative `e = function + 2u`. The sum of
//!   the k positive weights is off by at most `e + (k−1)·u` relative, the
//!   division and the scaling by one rounding each, and the factor by its
//!   own rounding to the arithmetic.
//! - `moe_select` is judged exactly, which holds only where the scores it
//!   decides between are farther apart than their errors. A biased score
//!   `c = σ(x) + b` is off by at most `(function + 2u)·σ + u·|c|`; a group's
//!   score (its two best, summed) by twice its worst member's error plus
//!   one rounding. Every decision (the last group kept against the best one
//!   left out, the last expert chosen against the best one left out) must
//!   be separated by more than the two errors, or be between scores
//!   computed from identical inputs, which every backend computes alike
//!   and orders by index (for groups: identical best pairs, each group's
//!   second place itself decided). A case that decides closer than that is refused
//!   for the declaring backend, not judged.

use glmhal_hal::{HalError, HostTensor, Result};

use super::linear::Dots;
use super::{Budget, Ctx};
use crate::reference::experts::{
    biased_scores, checked_ids, group_score, kept_groups, select_row, sigmoid, Routing,
};

pub(super) fn mat_mul_id(ctx: &Ctx, inputs: &[HostTensor]) -> Result<Vec<f64>> {
    let (x, w, ids) = (&inputs[0], &inputs[1], &inputs[2]);
    let (t, rows, k) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2]);
    let (e, n) = (w.desc.shape[0], w.desc.shape[1]);
    let chosen = ids.desc.shape[1];
    let ids = checked_ids("mat_mul_id", ids, e)?;
    let (xs, ws) = (x.to_f64(), w.to_f64());
    let dots = Dots::new(ctx, x.desc.dtype, w.desc.dtype, &xs, &ws);
    let mut out = Vec::with_capacity(t * chosen * n);
    for tok in 0..t {
        for j in 0..chosen {
            let row = tok * rows + if rows == 1 { 0 } else { j };
            let expert = ids[tok * chosen + j];
            for col in 0..n {
                let (y, budget) = dots.dot(row, expert * n + col, k);
                out.push(ctx.finish(budget, y));
            }
        }
    }
    Ok(out)
}

pub(super) fn moe_weights(
    ctx: &Ctx,
    logits: &HostTensor,
    ids: &HostTensor,
    (normalize, scale): (bool, f64),
) -> Result<Vec<f64>> {
    let u = ctx.u();
    let k = ids.desc.shape[1];
    let sigma = ctx.function() + 2.0 * u;
    let factor = (ctx.p.accumulate.round(scale) - scale).abs() / scale.abs().max(f64::MIN_POSITIVE);
    let relative = if normalize {
        2.0 * sigma + (k as f64 + 1.0) * u
    } else {
        sigma
    } + u
        + factor;
    // Every step's error is relative to the weight, whose exact value the reference gives.
    Ok(
        crate::reference::experts::weights(logits, ids, normalize, scale)?
            .into_iter()
            .map(|w| ctx.finish(Budget::det(relative * w.abs()), w))
            .collect(),
    )
}

/// How far one computed biased score may land from the exact one.
fn score_error(ctx: &Ctx, logit: f64, biased: f64) -> f64 {
    let u = ctx.u();
    (ctx.function() + 2.0 * u) * sigmoid(logit) + u * biased.abs()
}

/// Checks that every decision of `moe_select` on these inputs is farther
/// apart than a backend computing as `ctx` declares can blur, so the ids
/// may be judged exactly.
pub(super) fn moe_select_decidable(
    ctx: &Ctx,
    logits: &HostTensor,
    bias: &HostTensor,
    r: Routing,
) -> Result<()> {
    let e = logits.desc.shape[1];
    let per = e / r.n_group;
    let l = logits.to_f64();
    let b = bias.to_f64();
    let u = ctx.u();
    for (t, scores) in biased_scores(logits, bias).iter().enumerate() {
        let lr = &l[t * e..(t + 1) * e];
        let err: Vec<f64> = (0..e).map(|i| score_error(ctx, lr[i], scores[i])).collect();
        let same_inputs = |i: usize, j: usize| lr[i] == lr[j] && b[i] == b[j];
        let refuse = |what: String| {
            Err(HalError::invalid(
                "moe_select case",
                format!("row {t}: {what} are closer than this precision can order; the case cannot be judged exactly"),
            ))
        };
        let kept = kept_groups(scores, r);
        if r.n_group > 1 {
            let group = |g: usize| &scores[g * per..(g + 1) * per];
            let group_err = |g: usize| {
                let worst = err[g * per..(g + 1) * per]
                    .iter()
                    .fold(0.0f64, |a, v| a.max(*v));
                2.0 * worst + u * group_score(group(g)).abs()
            };
            let ranked = |g: usize| {
                let mut m: Vec<usize> = (g * per..(g + 1) * per).collect();
                m.sort_by(|a, c| scores[*c].total_cmp(&scores[*a]).then(a.cmp(c)));
                m
            };
            // Two groups tie exactly only if their two best have identical
            // inputs and no third member can take the second place.
            let settled = |m: &[usize]| {
                m.get(2).is_none_or(|&third| {
                    let second = m[1];
                    same_inputs(second, third)
                        || (scores[second] - scores[third]).abs() > err[second] + err[third]
                })
            };
            for &g in &kept {
                for o in (0..r.n_group).filter(|o| !kept.contains(o)) {
                    let gap = (group_score(group(g)) - group_score(group(o))).abs();
                    let (rg, ro) = (ranked(g), ranked(o));
                    let identical = rg.iter().zip(&ro).take(2).all(|(a, c)| same_inputs(*a, *c))
                        && settled(&rg)
                        && settled(&ro);
                    if gap <= group_err(g) + group_err(o) && !identical {
                        return refuse(format!("the scores of groups {g} and {o}"));
                    }
                }
            }
        }
        let chosen = select_row(scores, r);
        let candidates = kept.iter().flat_map(|g| g * per..(g + 1) * per);
        for o in candidates.filter(|o| !chosen.contains(o)) {
            for &c in &chosen {
                let gap = (scores[c] - scores[o]).abs();
                if gap <= err[c] + err[o] && !same_inputs(c, o) {
                    return refuse(format!("the scores of experts {c} and {o}"));
                }
            }
        }
    }
    Ok(())
}
