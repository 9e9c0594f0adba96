//! rms_norm and layer_norm, one row per task.

use glmhal_hal::{quant::round_to, DType, Result};
use rayon::prelude::*;

use super::{In, Out};

pub(super) fn rms_norm(x: &In<'_>, w: &In<'_>, eps: f64, out: &mut Out<'_>) -> Result<()> {
    let h = x.desc.last_dim();
    let ws = w.f32s();
    let xs = x.f32s();
    let dtype = x.desc.dtype;
    let rows = |result: &mut [f32]| {
        result
            .par_chunks_mut(h)
            .zip(xs.par_chunks(h))
            .for_each(|(o, row)| {
                let r = (1.0 / (mean_square(row) + eps).sqrt()) as f32;
                // GLM rounds the normalized row to the input dtype before the weight.
                if dtype == DType::F32 {
                    for ((o, v), g) in o.iter_mut().zip(row).zip(ws.iter()) {
                        *o = v * r * g;
                    }
                } else {
                    for ((o, v), g) in o.iter_mut().zip(row).zip(ws.iter()) {
                        *o = round_to(dtype, v * r) * g;
                    }
                }
            })
    };
    out.fill_f32(xs.len(), rows);
    Ok(())
}

/// Mean of the squares in f64 (f16-range inputs squared overflow nothing,
/// and long rows stay exact), in four independent sums the compiler can
/// keep in one vector instead of one chain of dependent additions.
fn mean_square(row: &[f32]) -> f64 {
    let mut sums = [0.0f64; 4];
    let mut chunks = row.chunks_exact(4);
    for c in &mut chunks {
        for (s, v) in sums.iter_mut().zip(c) {
            *s += (*v as f64) * (*v as f64);
        }
    }
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|v| (*v as f64) * (*v as f64))
        .sum();
    (sums.iter().sum::<f64>() + tail) / row.len().max(1) as f64
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
