//! Elementwise activations and swiglu.

use glmhal_hal::Result;
use rayon::prelude::*;

use super::{simd, In, Out};

pub(super) fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

pub(super) fn gelu(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
}

pub(super) fn map(x: &In<'_>, out: &mut Out<'_>, f: impl Fn(f32) -> f32 + Sync) -> Result<()> {
    let mut v = x.to_f32();
    v.par_chunks_mut(4096)
        .for_each(|c| c.iter_mut().for_each(|e| *e = f(*e)));
    out.store(&v);
    Ok(())
}

pub(super) fn swiglu(x: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    let two_f = x.desc.last_dim();
    let f = two_f / 2;
    let v = x.f32s();
    let rows = |result: &mut [f32]| {
        result
            .par_chunks_mut(f)
            .zip(v.par_chunks(two_f))
            .for_each(|(o, row)| {
                let (gate, up) = row.split_at(f);
                simd::silu_mul(gate, up, o);
            })
    };
    out.fill_f32(v.len() / 2, rows);
    Ok(())
}
