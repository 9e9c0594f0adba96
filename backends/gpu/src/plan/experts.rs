//! The mixture-of-experts ops (`experts.cu`): `mat_mul_id` (one warp per
//! output column of each routed row, reading only the chosen experts'
//! weights), `moe_select` (one block per token) and `moe_weights` (one
//! thread per token); bad ids and NaN scores go to the status words.

use glmhal_hal::{Result, TensorDesc};

use super::{bytes, dt, launch, row_grid, stride_grid, view, Arg, Context, Launch, BLOCK};

/// Experts `moe_select` holds in shared memory (`experts.cu`'s MOE_MAX_EXPERTS).
pub const MOE_MAX_EXPERTS: usize = 1024;

/// `mat_mul_id`: `out[t,j] = x[t, j or 0] · w[ids[t,j]]ᵀ`.
pub(super) fn mat_mul_id(ins: &[TensorDesc], out: &TensorDesc, context: Context) -> Result<Launch> {
    let (x, w, ids) = (&ins[0], &ins[1], &ins[2]);
    let (rows, k) = (x.shape[1], x.shape[2]);
    let (experts, n) = (w.shape[0], w.shape[1]);
    let (tokens, chosen) = (ids.shape[0], ids.shape[1]);
    let pairs = tokens * chosen;
    let per_block = (BLOCK / context.warp.max(1)).max(1) as usize;
    // Each routed row reads one expert's matrix: at most every expert once.
    let expert_bytes = bytes(w) / experts.max(1) as u64;
    let weight_reads = (expert_bytes * pairs as u64).min(bytes(w));
    let mut l = launch(
        "experts.cu",
        format!(
            "mat_mul_id_{}_{}_{}",
            dt(x.dtype),
            dt(w.dtype),
            dt(out.dtype)
        ),
        [
            n.div_ceil(per_block).max(1) as u32,
            pairs.clamp(1, 65535) as u32,
            pairs.div_ceil(65535).max(1) as u32,
        ],
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(1),
            view(w)?,
            Arg::Tensor(2),
            view(ids)?,
            Arg::Tensor(3),
            view(out)?,
            Arg::U64(pairs as u64),
            Arg::U32(rows as u32),
            Arg::U32(chosen as u32),
            Arg::U32(experts as u32),
            Arg::U32(n as u32),
            Arg::U32(k as u32),
            Arg::Status,
        ],
        weight_reads + bytes(x) + bytes(ids),
    );
    l.block = BLOCK;
    Ok(l)
}

/// `moe_select`: one block per token.
pub(super) fn moe_select(
    ins: &[TensorDesc],
    out: &TensorDesc,
    (top_k, n_group, topk_group): (usize, usize, usize),
) -> Result<Launch> {
    let (logits, bias) = (&ins[0], &ins[1]);
    let (rows, experts) = (logits.shape[0], logits.shape[1]);
    Ok(launch(
        "experts.cu",
        "moe_select".into(),
        row_grid(rows),
        vec![
            Arg::Tensor(0),
            view(logits)?,
            Arg::Tensor(1),
            view(bias)?,
            Arg::Tensor(2),
            view(out)?,
            Arg::U32(rows as u32),
            Arg::U32(experts as u32),
            Arg::U32(top_k as u32),
            Arg::U32(n_group as u32),
            Arg::U32(topk_group as u32),
            Arg::Status,
        ],
        bytes(logits) + bytes(bias),
    ))
}

/// `moe_weights`: one thread per token.
pub(super) fn moe_weights(
    ins: &[TensorDesc],
    out: &TensorDesc,
    (normalize, scale): (bool, f64),
) -> Result<Launch> {
    let (logits, ids) = (&ins[0], &ins[1]);
    let rows = logits.shape[0];
    Ok(launch(
        "experts.cu",
        "moe_weights".into(),
        stride_grid(rows),
        vec![
            Arg::Tensor(0),
            view(logits)?,
            Arg::Tensor(1),
            view(ids)?,
            Arg::Tensor(2),
            view(out)?,
            Arg::U32(rows as u32),
            Arg::U32(logits.shape[1] as u32),
            Arg::U32(ids.shape[1] as u32),
            Arg::I32(i32::from(normalize)),
            Arg::F32(scale as f32),
            Arg::Status,
        ],
        bytes(ids) + 4 * ids.numel() as u64,
    ))
}
