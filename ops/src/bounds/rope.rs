//! Bounds of rope.
//!
//! The angle `a = pos·θ^(−2i/rot)` is where the error lives at long
//! positions: the inverse frequency `f` comes from `pow`, or from
//! `exp(e·ln θ)`, whose argument carries a rounding proportional to
//! `|ln f|`, so `f` carries `(2·|ln f| + function + 2)·u` relative; the
//! product with the position one more `u`. An angle error `δa` moves
//! `y_a = x₀·cos a − x₁·sin a` by `|y_b|·δa` (and `y_b` by `|y_a|·δa`),
//! plus the second-order `(|x₀| + |x₁|)·δa²/2`. `sin` and `cos` err by the
//! declared function error (absolute), and the two products and their sum
//! are rounded once each. Dims past `rot` are copied.

use glmhal_hal::{HostTensor, RopeMode};

use super::{Budget, Ctx};

pub(super) fn rope(
    ctx: &Ctx,
    x: &HostTensor,
    positions: &[i32],
    rot: usize,
    theta: f64,
    mode: RopeMode,
) -> Vec<f64> {
    let (t, heads, d) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2]);
    let xs = x.to_f64();
    let u = ctx.u();
    let half = rot / 2;
    let mut out = vec![0.0; xs.len()];
    for (ti, pos) in positions.iter().enumerate().take(t) {
        let pos = *pos as f64;
        for h in 0..heads {
            let base = (ti * heads + h) * d;
            let head = &xs[base..base + d];
            let o = &mut out[base..base + d];
            for i in 0..half {
                let f = theta.powf(-2.0 * i as f64 / rot as f64);
                let rel_f = (2.0 * f.ln().abs() + 2.0) * u + ctx.function();
                let angle = pos * f;
                let d_angle = angle.abs() * (rel_f + u);
                let (s, c) = angle.sin_cos();
                let (a, b) = mode.pair(i, rot);
                let (x0, x1) = (head[a], head[b]);
                let (ya, yb) = (x0 * c - x1 * s, x1 * c + x0 * s);
                let common = (x0.abs() + x1.abs()) * (ctx.function() + d_angle * d_angle / 2.0);
                let err_a =
                    yb.abs() * d_angle + common + u * ((x0 * c).abs() + (x1 * s).abs() + ya.abs());
                let err_b =
                    ya.abs() * d_angle + common + u * ((x1 * c).abs() + (x0 * s).abs() + yb.abs());
                o[a] = ctx.finish(Budget::det(err_a), ya);
                o[b] = ctx.finish(Budget::det(err_b), yb);
            }
            // Both pairings rotate exactly the first `rot` dims.
            for (o, v) in o[rot..].iter_mut().zip(&head[rot..]) {
                *o = ctx.output(*v);
            }
        }
    }
    out
}
