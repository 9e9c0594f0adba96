//! `get_rows`: rows of a table by id; ids outside the table are reported in
//! the status words.

use glmhal_hal::{Result, TensorDesc};

use super::{bytes, dt, launch, stride_grid, view, Arg, Context, Launch};

/// Gathers `ids.len()` rows of the table into the output.
pub(super) fn get_rows(ins: &[TensorDesc], out: &TensorDesc, context: Context) -> Result<Launch> {
    let (t, ids) = (&ins[0], &ins[1]);
    Ok(launch(
        "embedding.cu",
        format!("get_rows_{}_{}", context.token(0, t.dtype), dt(out.dtype)),
        stride_grid(out.numel()),
        vec![
            Arg::Tensor(0),
            view(t)?,
            Arg::Tensor(1),
            view(ids)?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U64(ids.shape[0] as u64),
            Arg::U32(t.shape[1] as u32),
            Arg::U32(t.shape[0] as u32),
            Arg::Status,
        ],
        // Only the rows asked for are read.
        row_bytes(t, context.is_packed(0)) * ids.shape[0] as u64 + bytes(ids),
    ))
}

/// Bytes of one row of `d` (packed or as described).
pub(super) fn row_bytes(d: &TensorDesc, packed: bool) -> u64 {
    if packed {
        crate::packed::row_bytes(d.dtype, d.last_dim()) as u64
    } else {
        d.dtype.bytes_for(d.last_dim()) as u64
    }
}
