//! `attention`: one block per (token, head), grouped-query heads sharing
//! their k/v head, scaled and optionally causal.

use glmhal_hal::{Result, TensorDesc};

use super::{dt, launch, row_grid, view, Arg, Launch};

/// Attention of `q` over the cached `k` and `v`.
pub(super) fn attention(
    scale: f64,
    causal: bool,
    ins: &[TensorDesc],
    out: &TensorDesc,
) -> Result<Launch> {
    let (q, k, v) = (&ins[0], &ins[1], &ins[2]);
    Ok(launch(
        "attention.cu",
        format!(
            "attention_{}_{}_{}",
            dt(q.dtype),
            dt(k.dtype),
            dt(out.dtype)
        ),
        row_grid(q.shape[0] * q.shape[1]),
        vec![
            Arg::Tensor(0),
            view(q)?,
            Arg::Tensor(1),
            view(k)?,
            Arg::Tensor(2),
            view(v)?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U32(q.shape[0] as u32),
            Arg::U32(q.shape[1] as u32),
            Arg::U32(q.shape[2] as u32),
            Arg::U32(k.shape[0] as u32),
            Arg::U32(k.shape[1] as u32),
            Arg::F32(scale as f32),
            Arg::I32(i32::from(causal)),
        ],
    ))
}
