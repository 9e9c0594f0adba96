//! Row reductions: softmax (f32, max-subtracted) and argmax (refusing rows
//! that hold a NaN or an infinity).

use glmhal_hal::{HalError, Result};
use rayon::prelude::*;

use super::{In, Out, Scratch};

pub(super) fn softmax(x: &In<'_>, scale: f64, causal: bool, out: &mut Out<'_>) -> Result<()> {
    let (m, n) = (x.desc.shape[0], x.desc.shape[1]);
    let scale = scale as f32;
    let mut rows = x.to_f32();
    rows.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let visible = if causal { i + n - m + 1 } else { n };
        let (live, masked) = row.split_at_mut(visible);
        let mut max = f32::NEG_INFINITY;
        for v in live.iter_mut() {
            *v *= scale;
            max = max.max(*v);
        }
        let mut sum = 0.0f32;
        for v in live.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        live.iter_mut().for_each(|v| *v *= inv);
        masked.fill(0.0);
    });
    out.store(&rows);
    Ok(())
}

/// The first index of each row's largest value; a row holding a NaN or an
/// infinity is an error naming it (logits that are not finite have no answer).
pub(super) fn argmax(x: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    let n = x.desc.shape[1];
    let rows = x.to_f32();
    let mut best = Scratch::filled(rows.len() / n, 0i32);
    best.par_iter_mut()
        .zip(rows.par_chunks(n))
        .for_each(|(best, row)| {
            let (mut b, mut finite) = (0, true);
            for (j, v) in row.iter().enumerate() {
                finite &= v.is_finite();
                if *v > row[b] {
                    b = j;
                }
            }
            *best = if finite { b as i32 } else { -1 };
        });
    if let Some(row) = best.iter().position(|b| *b < 0) {
        return Err(HalError::NonFinite {
            backend: "cpu".into(),
            op: "argmax".into(),
            row,
        });
    }
    out.store_i32(&best);
    Ok(())
}
