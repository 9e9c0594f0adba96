//! kv_write: rows into the cache at positions; other rows are not touched.

use glmhal_hal::{HalError, Result};

use super::{checked_index, In, Out};

pub(super) fn write(rows: &In<'_>, positions: &In<'_>, cache: &mut Out<'_>) -> Result<()> {
    let capacity = cache.desc.shape[0];
    let (kv, d) = (rows.desc.shape[1], rows.desc.shape[2]);
    let pos = positions
        .to_i32()
        .into_iter()
        .map(|p| checked_index("kv_write", "position", p, capacity))
        .collect::<Result<Vec<usize>>>()?;
    let mut seen = vec![false; capacity];
    for &p in &pos {
        if std::mem::replace(&mut seen[p], true) {
            return Err(HalError::invalid(
                "kv_write",
                format!("position {p} is written twice"),
            ));
        }
    }
    let mut row = vec![0.0f32; d];
    for (t, &p) in pos.iter().enumerate() {
        for g in 0..kv {
            rows.read_row(t * kv + g, &mut row);
            cache.write_row(p * kv + g, &row);
        }
    }
    Ok(())
}
