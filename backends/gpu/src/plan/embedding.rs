//! `get_rows`: rows of a table by id; ids outside the table are reported in
//! the status words.

use glmhal_hal::{Result, TensorDesc};

use super::{dt, launch, stride_grid, view, Arg, Launch};

/// Gathers `ids.len()` rows of the table into the output.
pub(super) fn get_rows(ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let (t, ids) = (&ins[0], &ins[1]);
    Ok(launch(
        "embedding.cu",
        format!("get_rows_{}_{}", dt(t.dtype), dt(out.dtype)),
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
    ))
}
