//! get_rows: embedding lookup.

use glmhal_hal::{HalError, HostTensor, Result};

pub(super) fn get_rows(table: &HostTensor, ids: &[i32]) -> Result<Vec<f64>> {
    let (vocab, hidden) = (table.desc.shape[0], table.desc.shape[1]);
    let all = table.to_f64();
    let mut out = Vec::with_capacity(ids.len() * hidden);
    for (i, &id) in ids.iter().enumerate() {
        if id < 0 || id as usize >= vocab {
            return Err(HalError::invalid(
                "get_rows",
                format!("id {id} at position {i} is outside the table of {vocab} rows"),
            ));
        }
        let r = id as usize;
        out.extend_from_slice(&all[r * hidden..(r + 1) * hidden]);
    }
    Ok(out)
}
