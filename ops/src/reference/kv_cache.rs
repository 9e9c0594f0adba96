//! kv_write: rows into a KV cache at positions.

use glmhal_hal::{HalError, HostTensor, Result};

pub(super) fn write(cache: &HostTensor, rows: &HostTensor, positions: &[i32]) -> Result<Vec<f64>> {
    let capacity = cache.desc.shape[0];
    let row_len = cache.desc.shape[1] * cache.desc.shape[2];
    let mut out = cache.to_f64();
    let src = rows.to_f64();
    let mut seen = vec![false; capacity];
    for (t, &p) in positions.iter().enumerate() {
        if p < 0 || p as usize >= capacity {
            return Err(HalError::invalid(
                "kv_write",
                format!("position {p} (row {t}) is outside the cache of {capacity} rows"),
            ));
        }
        let p = p as usize;
        if std::mem::replace(&mut seen[p], true) {
            return Err(HalError::invalid(
                "kv_write",
                format!("position {p} is written twice"),
            ));
        }
        out[p * row_len..(p + 1) * row_len].copy_from_slice(&src[t * row_len..(t + 1) * row_len]);
    }
    Ok(out)
}
