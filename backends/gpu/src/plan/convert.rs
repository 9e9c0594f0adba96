//! `quantize`: blocks of 32 values into Q8_0 or Q4_0.

use glmhal_hal::{Result, TensorDesc};

use super::{dt, launch, once, stride_grid, view, Arg, Launch};

/// One thread per block of 32 values.
pub(super) fn quantize(ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let x = &ins[0];
    let blocks = x.numel() / 32;
    Ok(launch(
        "convert.cu",
        format!("quantize_{}_{}", dt(x.dtype), dt(out.dtype)),
        stride_grid(blocks),
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U64(blocks as u64),
        ],
        once(ins),
    ))
}
