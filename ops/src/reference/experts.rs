//! The mixture-of-experts ops: the router's selection and weights, and the
//! product of rows with the experts they were routed to.

use glmhal_hal::{HalError, HostTensor, Result};

/// `σ(x) = 1 / (1 + exp(−x))`.
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The router's selection parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Routing {
    pub top_k: usize,
    pub n_group: usize,
    pub topk_group: usize,
}

/// Order by score, highest first; the lower index first on equal scores.
fn by_score_then_index(scores: &[f64]) -> impl Fn(&usize, &usize) -> std::cmp::Ordering + '_ {
    move |a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b))
}

/// A group's score: the sum of its two largest expert scores.
pub(crate) fn group_score(scores: &[f64]) -> f64 {
    let (mut best, mut second) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &s in scores {
        if s > best {
            second = best;
            best = s;
        } else if s > second {
            second = s;
        }
    }
    best + second
}

/// The groups kept, by group score (lowest group index on ties); all of
/// them when the experts are not grouped.
pub(crate) fn kept_groups(scores: &[f64], r: Routing) -> Vec<usize> {
    if r.n_group == 1 {
        return vec![0];
    }
    let per = scores.len() / r.n_group;
    let group_scores: Vec<f64> = scores.chunks_exact(per).map(group_score).collect();
    let mut order: Vec<usize> = (0..r.n_group).collect();
    order.sort_by(by_score_then_index(&group_scores));
    order.truncate(r.topk_group);
    order.sort_unstable();
    order
}

/// The experts of one row's biased `scores` the router picks, ascending.
pub(crate) fn select_row(scores: &[f64], r: Routing) -> Vec<usize> {
    let per = scores.len() / r.n_group;
    let mut candidates: Vec<usize> = kept_groups(scores, r)
        .into_iter()
        .flat_map(|g| g * per..(g + 1) * per)
        .collect();
    candidates.sort_by(by_score_then_index(scores));
    candidates.truncate(r.top_k);
    candidates.sort_unstable();
    candidates
}

/// Each row's biased scores `σ(logit) + bias`, in f64.
pub(crate) fn biased_scores(logits: &HostTensor, bias: &HostTensor) -> Vec<Vec<f64>> {
    let e = logits.desc.shape[1];
    let b = bias.to_f64();
    logits
        .to_f64()
        .chunks_exact(e)
        .map(|row| row.iter().zip(&b).map(|(l, b)| sigmoid(*l) + b).collect())
        .collect()
}

pub(super) fn select(logits: &HostTensor, bias: &HostTensor, r: Routing) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(logits.desc.shape[0] * r.top_k);
    for (t, row) in biased_scores(logits, bias).iter().enumerate() {
        if row.iter().any(|s| s.is_nan()) {
            return Err(HalError::invalid(
                "moe_select",
                format!("row {t} holds a NaN score"),
            ));
        }
        out.extend(select_row(row, r).into_iter().map(|i| i as f64));
    }
    Ok(out)
}

/// The chosen ids of each row, checked against the `experts` there are.
pub(crate) fn checked_ids(op: &str, ids: &HostTensor, experts: usize) -> Result<Vec<usize>> {
    ids.to_i32()?
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            usize::try_from(id)
                .ok()
                .filter(|e| *e < experts)
                .ok_or_else(|| {
                    HalError::invalid(
                        op,
                        format!("expert id {id} at position {i} is outside the {experts} experts"),
                    )
                })
        })
        .collect()
}

pub(crate) fn weights(
    logits: &HostTensor,
    ids: &HostTensor,
    normalize: bool,
    scale: f64,
) -> Result<Vec<f64>> {
    let e = logits.desc.shape[1];
    let k = ids.desc.shape[1];
    let ids = checked_ids("moe_weights", ids, e)?;
    let l = logits.to_f64();
    let mut out = Vec::with_capacity(ids.len());
    for (t, chosen) in ids.chunks_exact(k).enumerate() {
        let s: Vec<f64> = chosen.iter().map(|i| sigmoid(l[t * e + i])).collect();
        let denom = if normalize {
            s.iter().sum::<f64>() + 1e-20
        } else {
            1.0
        };
        out.extend(s.iter().map(|v| v / denom * scale));
    }
    Ok(out)
}

pub(super) fn mat_mul_id(x: &HostTensor, w: &HostTensor, ids: &HostTensor) -> Result<Vec<f64>> {
    let (t, rows, k) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2]);
    let (e, n) = (w.desc.shape[0], w.desc.shape[1]);
    let chosen = ids.desc.shape[1];
    let ids = checked_ids("mat_mul_id", ids, e)?;
    let (xs, ws) = (x.to_f64(), w.to_f64());
    let mut out = Vec::with_capacity(t * chosen * n);
    for tok in 0..t {
        for j in 0..chosen {
            let r = tok * rows + if rows == 1 { 0 } else { j };
            let xr = &xs[r * k..(r + 1) * k];
            let expert = ids[tok * chosen + j];
            for col in 0..n {
                let wr = &ws[(expert * n + col) * k..(expert * n + col + 1) * k];
                out.push(xr.iter().zip(wr).map(|(a, b)| a * b).sum());
            }
        }
    }
    Ok(out)
}
