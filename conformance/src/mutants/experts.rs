//! Mutants of the mixture-of-experts ops: a bf16 router, the correction
//! bias or the groups forgotten, ties given to the last index, rows or
//! experts mixed up, weights left unnormalized or unscaled.

use glmhal_hal::{DType, HostTensor, Op, OpKind, Result};

use super::catalogue::{map_i32, mutant, round_values};
use super::kernels::Kernel;
use super::{Mutant, Plant};

/// The mixture-of-experts mutants.
pub(super) fn all() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "moe-select-bf16-scores",
            K::MoeSelect,
            "router logits and correction bias rounded to bf16 (a bf16 router)",
            Plant::Inputs(|_, t| {
                round_values(&mut t[0], DType::Bf16);
                round_values(&mut t[1], DType::Bf16);
            }),
        ),
        mutant(
            "moe-select-bias-ignored",
            K::MoeSelect,
            "experts chosen on the scores without the correction bias",
            Plant::Inputs(|_, t| {
                let zeros = vec![0.0; t[1].desc.numel()];
                let _ = t[1].write_f32(&zeros);
            }),
        ),
        mutant(
            "moe-select-groups-ignored",
            K::MoeSelect,
            "top-k over every expert, the group limit left out",
            Plant::Params(|op| match op {
                Op::MoeSelect { top_k, .. } => Op::MoeSelect {
                    top_k: *top_k,
                    n_group: 1,
                    topk_group: 1,
                },
                other => other.clone(),
            }),
        ),
        mutant(
            "moe-select-last-on-ties",
            K::MoeSelect,
            "equal scores go to the higher index",
            Plant::Kernel(Kernel::MoeSelectLastOnTies),
        ),
        mutant(
            "mat-mul-id-first-row-only",
            K::MatMulId,
            "every slot of a token multiplies the token's first row",
            Plant::Inputs(|_, t| {
                let (rows, k) = (t[0].desc.shape[1], t[0].desc.shape[2]);
                let mut v = t[0].to_f32();
                for token in v.chunks_exact_mut(rows * k) {
                    let first = token[..k].to_vec();
                    for row in token.chunks_exact_mut(k) {
                        row.copy_from_slice(&first);
                    }
                }
                let _ = t[0].write_f32(&v);
            }),
        ),
        mutant(
            "mat-mul-id-expert-off-by-one",
            K::MatMulId,
            "reads expert id+1",
            Plant::Inputs(|_, t| {
                let experts = t[1].desc.shape[0] as i32;
                map_i32(&mut t[2], |id| (id + 1) % experts);
            }),
        ),
        mutant(
            "moe-weights-unnormalized",
            K::MoeWeights,
            "the chosen weights not divided by their sum",
            Plant::Params(|op| match op {
                Op::MoeWeights { scale, .. } => Op::MoeWeights {
                    normalize: false,
                    scale: *scale,
                },
                other => other.clone(),
            }),
        ),
        mutant(
            "moe-weights-unscaled",
            K::MoeWeights,
            "the routed scaling factor left out",
            Plant::Params(|op| match op {
                Op::MoeWeights { normalize, .. } => Op::MoeWeights {
                    normalize: *normalize,
                    scale: 1.0,
                },
                other => other.clone(),
            }),
        ),
    ]
}

/// moe_select in f32 with equal scores (and group scores) going to the higher index.
pub(super) fn select_last_on_ties(
    inputs: &[HostTensor],
    out: &mut HostTensor,
    op: &Op,
) -> Result<()> {
    let Op::MoeSelect {
        top_k,
        n_group,
        topk_group,
    } = *op
    else {
        return Ok(());
    };
    let e = inputs[0].desc.shape[1];
    let per = e / n_group;
    let bias = inputs[1].to_f32();
    // Higher score first; of equal ones, the higher index.
    let later_first = |s: &[f32], a: &usize, b: &usize| s[*b].total_cmp(&s[*a]).then(b.cmp(a));
    let mut ids = Vec::new();
    for row in inputs[0].to_f32().chunks_exact(e) {
        let scores: Vec<f32> = row
            .iter()
            .zip(&bias)
            .map(|(l, b)| 1.0 / (1.0 + (-l).exp()) + b)
            .collect();
        let group_scores: Vec<f32> = scores
            .chunks_exact(per)
            .map(|g| {
                let mut m = g.to_vec();
                m.sort_by(|a, b| b.total_cmp(a));
                m[0] + m.get(1).copied().unwrap_or(0.0)
            })
            .collect();
        let mut groups: Vec<usize> = (0..n_group).collect();
        groups.sort_by(|a, b| later_first(&group_scores, a, b));
        groups.truncate(if n_group == 1 { 1 } else { topk_group });
        let mut candidates: Vec<usize> =
            groups.iter().flat_map(|g| g * per..(g + 1) * per).collect();
        candidates.sort_by(|a, b| later_first(&scores, a, b));
        candidates.truncate(top_k);
        candidates.sort_unstable();
        ids.extend(candidates.into_iter().map(|i| i as f32));
    }
    out.write_f32(&ids)
}
