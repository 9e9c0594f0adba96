//! rms_norm and layer_norm, one row per task.

use glmhal_hal::{quant::round_to, Result};
use rayon::prelude::*;

use super::{In, Out};

pub(super) fn rms_norm(x: &In<'_>, w: &In<'_>, eps: f64, out: &mut Out<'_>) -> Result<()> {
    let h = x.desc.last_dim();
    let ws = w.to_f32();
    let mut rows = x.to_f32();
    let dtype = x.desc.dtype;
    rows.par_chunks_mut(h).for_each(|row| {
        // Sum of squares in f64: f16-range inputs squared overflow nothing, and long rows stay exact.
        let ms = row.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / h as f64;
        let r = (1.0 / (ms + eps).sqrt()) as f32;
        for (v, g) in row.iter_mut().zip(&ws) {
            *v = round_to(dtype, *v * r) * g;
        }
    });
    out.store(&rows);
    Ok(())
}

pub(super) fn layer_norm(
    x: &In<'_>,
    w: &In<'_>,
    b: &In<'_>,
    eps: f64,
    out: &mut Out<'_>,
) -> Result<()> {
    let h = x.desc.last_dim();
    let (ws, bs) = (w.to_f32(), b.to_f32());
    let mut rows = x.to_f32();
    rows.par_chunks_mut(h).for_each(|row| {
        let mean = row.iter().map(|v| *v as f64).sum::<f64>() / h as f64;
        let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
        let r = 1.0 / (var + eps).sqrt();
        for ((v, g), bb) in row.iter_mut().zip(&ws).zip(&bs) {
            *v = ((*v as f64 - mean) * r) as f32 * g + bb;
        }
    });
    out.store(&rows);
    Ok(())
}
