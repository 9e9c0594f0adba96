//! `kv_write`: rows into the cache at positions; positions outside the cache
//! are reported in the status words.

use glmhal_hal::{Result, TensorDesc};

use super::{dt, launch, once, stride_grid, view, Arg, Launch};

/// Writes each token's heads into the cache row its position names.
pub(super) fn kv_write(ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let x = &ins[0];
    let rows = x.numel();
    Ok(launch(
        "kv_cache.cu",
        format!("kv_write_{}_{}", dt(x.dtype), dt(out.dtype)),
        stride_grid(rows),
        vec![
            Arg::Tensor(0),
            view(x)?,
            Arg::Tensor(1),
            view(&ins[1])?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U64(rows as u64),
            Arg::U32((x.shape[1] * x.shape[2]) as u32),
            Arg::U32(out.shape[0] as u32),
            Arg::Status,
        ],
        once(ins),
    ))
}
