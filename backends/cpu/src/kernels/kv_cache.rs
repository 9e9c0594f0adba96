//! kv_write: rows into the cache at positions; other rows are not touched.

use glmhal_hal::{HalError, Result};

use super::{In, Out, Scratch};

pub(super) fn write(rows: &In<'_>, positions: &In<'_>, cache: &mut Out<'_>) -> Result<()> {
    let capacity = cache.desc.shape[0];
    let (kv, d) = (rows.desc.shape[1], rows.desc.shape[2]);
    let pos = positions.indices("kv_write", "position", capacity)?;
    let mut seen = Scratch::filled(capacity, false);
    for &p in pos.iter() {
        if std::mem::replace(&mut seen[p], true) {
            return Err(HalError::invalid(
                "kv_write",
                format!("position {p} is written twice"),
            ));
        }
    }
    let mut row = Scratch::filled(d, 0.0f32);
    for (t, &p) in pos.iter().enumerate() {
        for g in 0..kv {
            rows.read_row(t * kv + g, &mut row);
            cache.write_row(p * kv + g, &row);
        }
    }
    Ok(())
}
