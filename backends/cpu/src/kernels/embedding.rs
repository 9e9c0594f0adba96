//! get_rows: embedding lookup, dequantizing the rows it picks.

use glmhal_hal::Result;
use rayon::prelude::*;

use super::{In, Out, Scratch};

pub(super) fn get_rows(table: &In<'_>, ids: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    let (vocab, hidden) = (table.desc.shape[0], table.desc.shape[1]);
    let rows = ids.indices("get_rows", "token id", vocab)?;
    let mut result = Scratch::filled(rows.len() * hidden, 0.0f32);
    result
        .par_chunks_mut(hidden)
        .zip(rows.par_iter())
        .for_each(|(dst, &r)| table.read_row(r, dst));
    out.store(&result);
    Ok(())
}
