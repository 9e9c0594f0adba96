//! Row reductions: `softmax` (scaled, optionally causal) and `argmax`
//! (which reports rows holding a NaN or an infinity in the status words).

use glmhal_hal::{Result, TensorDesc};

use super::{dt, launch, once, row_grid, view, Arg, Launch};

/// `softmax` over the last dim, one block per row.
pub(super) fn softmax(
    scale: f64,
    causal: bool,
    ins: &[TensorDesc],
    out: &TensorDesc,
) -> Result<Launch> {
    let x = &ins[0];
    Ok(launch(
        "reduce.cu",
        format!("softmax_{}_{}", dt(x.dtype), dt(out.dtype)),
        row_grid(x.rows()),
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U32(x.rows() as u32),
            Arg::U32(x.last_dim() as u32),
            Arg::F32(scale as f32),
            Arg::I32(i32::from(causal)),
        ],
        once(ins),
    ))
}

/// `argmax` of each row, one block per row.
pub(super) fn argmax(ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let x = &ins[0];
    Ok(launch(
        "reduce.cu",
        format!("argmax_{}", dt(x.dtype)),
        row_grid(x.rows()),
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U32(x.rows() as u32),
            Arg::U32(x.last_dim() as u32),
            Arg::Status,
        ],
        once(ins),
    ))
}
