//! rope: angles in f64 per (position, pair), rotation in f32.

use glmhal_hal::{Result, RopeMode};
use rayon::prelude::*;

use super::{checked_index, In, Out, Scratch};

pub(super) fn rope(
    x: &In<'_>,
    positions: &In<'_>,
    rot: usize,
    theta: f64,
    mode: RopeMode,
    out: &mut Out<'_>,
) -> Result<()> {
    let (heads, d) = (x.desc.shape[1], x.desc.shape[2]);
    let pos = positions.to_i32();
    for &p in pos.iter() {
        checked_index("rope", "position", p, i32::MAX as usize)?;
    }
    let half = rot / 2;
    let mut inv_freq = Scratch::empty();
    inv_freq.extend((0..half).map(|i| theta.powf(-2.0 * i as f64 / rot as f64)));
    let xs = x.f32s();
    let rotate = |rows: &mut [f32]| {
        rows.par_chunks_mut(heads * d)
            .zip(xs.par_chunks(heads * d))
            .zip(pos.par_iter())
            .for_each_init(
                || Scratch::filled(half, (0.0f32, 0.0f32)),
                |trig, ((token, input), &p)| {
                    token.copy_from_slice(input);
                    for (tc, f) in trig.iter_mut().zip(&inv_freq) {
                        let (s, c) = (p as f64 * f).sin_cos();
                        *tc = (s as f32, c as f32);
                    }
                    for head in token.chunks_exact_mut(d) {
                        for (i, &(s, c)) in trig.iter().enumerate() {
                            let (a, b) = mode.pair(i, rot);
                            let (x0, x1) = (head[a], head[b]);
                            head[a] = x0 * c - x1 * s;
                            head[b] = x1 * c + x0 * s;
                        }
                    }
                },
            )
    };
    out.fill_f32(xs.len(), rotate);
    Ok(())
}
