//! The mixture-of-experts ops.
//!
//! `mat_mul_id` groups the rows routed to each expert and multiplies each
//! group with that expert's weights in one product (the dispatch of
//! [`matmul::product`]: dot products as stored for a few rows, the GEMM for
//! many), so a decode step reads only the chosen experts' weights and a
//! prefill reads each chosen expert once. The router computes every score
//! with one scalar path, so equal inputs give equal scores and ties go to
//! the lowest index as the catalogue says.

use glmhal_hal::{ActivationQuant, HalError, Result, TensorDesc};

use super::matmul::{self, FUSED_MAX_ROWS};
use super::{In, Out, Scratch};

pub(super) fn mat_mul_id(x: &In<'_>, w: &In<'_>, ids: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    let (rows, k) = (x.desc.shape[1], x.desc.shape[2]);
    let (e, n) = (w.desc.shape[0], w.desc.shape[1]);
    let chosen = ids.desc.shape[1];
    let ids = ids.indices("mat_mul_id", "expert id", e)?;
    let xs = x.f32s();
    // Output rows (token, slot) in order of their expert.
    let mut order = Scratch::filled(ids.len(), 0usize);
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    order.sort_by_key(|&p| ids[p]);
    let mut result = Scratch::filled(ids.len() * n, 0.0f32);
    let mut gathered = Scratch::filled(0, 0.0f32);
    let mut part = Scratch::filled(0, 0.0f32);
    for group in order.chunk_by(|a, b| ids[*a] == ids[*b]) {
        let expert = In {
            desc: w.desc.select(ids[group[0]])?,
            bytes: w.bytes,
        };
        gathered.clear();
        for &p in group {
            let row = p / chosen * rows + if rows == 1 { 0 } else { p % chosen };
            gathered.extend_from_slice(&xs[row * k..(row + 1) * k]);
        }
        part.clear();
        part.resize(group.len() * n, 0.0);
        matmul::product(&gathered, k, &expert, None, &mut part, group.len(), n);
        for (&p, values) in group.iter().zip(part.chunks_exact(n)) {
            result[p * n..(p + 1) * n].copy_from_slice(values);
        }
    }
    out.store(&result);
    Ok(())
}

/// What [`mat_mul_id`] does with the activations: each expert's group goes
/// through [`matmul::product`] with as many rows as were routed to it (one
/// to every (token, slot) pair of the step), so the declaration covers both
/// ends: the coarser block quantization of the two, and bf16 rounding where
/// a group may be large enough for the bf16 GEMM.
pub(crate) fn declared(
    x: &TensorDesc,
    w: &TensorDesc,
    ids: &TensorDesc,
) -> (ActivationQuant, bool) {
    let expert = TensorDesc::contiguous(w.dtype, &w.shape[1..]);
    let most = ids.numel();
    let rows = |m: usize| TensorDesc::contiguous(x.dtype, &[m, x.shape[2]]);
    let few = matmul::activation_quant(&rows(1), &expert);
    let many = matmul::activation_quant(&rows(FUSED_MAX_ROWS + 1), &expert);
    let coarser = |a: ActivationQuant, b: ActivationQuant| {
        let rank = |q| match q {
            ActivationQuant::Int8Blocks => 2,
            ActivationQuant::Int16Blocks => 1,
            _ => 0,
        };
        if rank(a) >= rank(b) {
            a
        } else {
            b
        }
    };
    let quant = if most > FUSED_MAX_ROWS {
        coarser(few, many)
    } else {
        few
    };
    (quant, matmul::rounds_activations_to_bf16(most, &expert))
}

/// `σ(x)` in f32, the one path every score takes.
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Score order: higher first, the lower index first on equal scores.
fn ranks_before(scores: &[f32], a: usize, b: usize) -> std::cmp::Ordering {
    scores[b].total_cmp(&scores[a]).then(a.cmp(&b))
}

pub(super) fn moe_select(
    logits: &In<'_>,
    bias: &In<'_>,
    (top_k, n_group, topk_group): (usize, usize, usize),
    out: &mut Out<'_>,
) -> Result<()> {
    let e = logits.desc.shape[1];
    let per = e / n_group;
    let all = logits.f32s();
    let bias = bias.f32s();
    let mut ids = Scratch::filled(0, 0i32);
    let mut scores = Scratch::filled(e, 0.0f32);
    let mut groups = Scratch::filled(n_group, 0.0f32);
    let mut order = Scratch::filled(e, 0usize);
    let mut kept = Scratch::filled(n_group, 0usize);
    for (t, row) in all.chunks_exact(e).enumerate() {
        for ((s, l), b) in scores.iter_mut().zip(row).zip(bias.iter()) {
            *s = sigmoid(*l) + b;
        }
        if scores.iter().any(|s| s.is_nan()) {
            return Err(HalError::NonFinite {
                backend: "cpu".into(),
                op: "moe_select".into(),
                row: t,
            });
        }
        kept.clear();
        kept.extend(0..n_group);
        if n_group > 1 {
            for (g, members) in groups.iter_mut().zip(scores.chunks_exact(per)) {
                let (mut best, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
                for &s in members {
                    if s > best {
                        second = best;
                        best = s;
                    } else if s > second {
                        second = s;
                    }
                }
                *g = best + second;
            }
            kept.sort_by(|a, b| ranks_before(&groups, *a, *b));
            kept.truncate(topk_group);
        }
        order.clear();
        for g in kept.iter() {
            order.extend(g * per..(g + 1) * per);
        }
        order.sort_by(|a, b| ranks_before(&scores, *a, *b));
        order.truncate(top_k);
        order.sort_unstable();
        ids.extend(order.iter().map(|i| *i as i32));
    }
    out.store_i32(&ids);
    Ok(())
}

pub(super) fn moe_weights(
    logits: &In<'_>,
    ids: &In<'_>,
    (normalize, scale): (bool, f64),
    out: &mut Out<'_>,
) -> Result<()> {
    let e = logits.desc.shape[1];
    let k = ids.desc.shape[1];
    let ids = ids.indices("moe_weights", "expert id", e)?;
    let all = logits.f32s();
    let scale = scale as f32;
    let mut weights = Scratch::filled(ids.len(), 0.0f32);
    for (t, (chosen, w)) in ids
        .chunks_exact(k)
        .zip(weights.chunks_exact_mut(k))
        .enumerate()
    {
        for (o, i) in w.iter_mut().zip(chosen) {
            *o = sigmoid(all[t * e + i]);
        }
        let denom = if normalize {
            w.iter().sum::<f32>() + 1e-20
        } else {
            1.0
        };
        for o in w.iter_mut() {
            *o = *o / denom * scale;
        }
    }
    out.store(&weights);
    Ok(())
}
