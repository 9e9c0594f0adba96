//! Bounds of the elementwise ops.
//!
//! - `add`, `mul`: one correctly rounded operation: half an ulp of the
//!   output, and half an ulp of the arithmetic as well when it is wider than
//!   the output (a double rounding).
//! - `scale`: the same, and the factor's own rounding to the arithmetic.
//! - `silu = x·σ(x)`, `σ = 1/(1 + exp(−x))`: the declared error of `exp`,
//!   the sum, the division and the product: `(function + 3u)·|y|`;
//!   `swi_glu` one more product.
//! - `gelu = x/2·(1 + tanh(z))`, `z = c·(x + 0.044715·x³)`: `z` carries six
//!   roundings of its terms, `tanh` moves by `(1 − t²)·δz` plus twice the
//!   function error (absolute: `tanh` may come from a sigmoid), `1 + t` one
//!   rounding (which dominates where `t` is near −1), and two products.

use glmhal_hal::HostTensor;

use super::{Budget, Ctx};
use crate::reference::activation::{gelu as gelu_value, silu as silu_value};
use crate::reference::elementwise::broadcast;

pub(super) fn add(ctx: &Ctx, a: &HostTensor, b: &HostTensor) -> Vec<f64> {
    binary(ctx, a, b, |x, y| x + y)
}

pub(super) fn mul(ctx: &Ctx, a: &HostTensor, b: &HostTensor) -> Vec<f64> {
    binary(ctx, a, b, |x, y| x * y)
}

fn binary(ctx: &Ctx, a: &HostTensor, b: &HostTensor, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let (da, db) = (a.desc.dtype, b.desc.dtype);
    broadcast(a, b, |x, y| {
        let v = f(x, y);
        // Rounded inputs move the result by their change times the
        // derivative (1 for add; the other operand for mul, bounded by it
        // plus its own change).
        let (ex, ey) = (ctx.input_rounding(da, x), ctx.input_rounding(db, y));
        let moved =
            ex * (f(1.0, y) - f(0.0, y)).abs() + ey * (f(x, 1.0) - f(x, 0.0)).abs() + ex * ey;
        ctx.finish(Budget::det(moved + ctx.intermediate(v)), v)
    })
}

pub(super) fn scale(ctx: &Ctx, x: &HostTensor, factor: f64) -> Vec<f64> {
    let stored = ctx.p.accumulate.round(factor);
    x.to_f64()
        .into_iter()
        .map(|v| {
            let y = v * factor;
            let moved = v.abs() * (stored - factor).abs()
                + ctx.input_rounding(x.desc.dtype, v) * factor.abs();
            ctx.finish(Budget::det(moved + ctx.intermediate(y)), y)
        })
        .collect()
}

pub(super) fn silu(ctx: &Ctx, x: &HostTensor) -> Vec<f64> {
    let u = ctx.u();
    x.to_f64()
        .into_iter()
        .map(|v| {
            let y = silu_value(v);
            ctx.finish(Budget::det((ctx.function() + 3.0 * u) * y.abs()), y)
        })
        .collect()
}

pub(super) fn swiglu(ctx: &Ctx, x: &HostTensor) -> Vec<f64> {
    let u = ctx.u();
    let two_f = x.desc.last_dim();
    let f = two_f / 2;
    x.to_f64()
        .chunks_exact(two_f)
        .flat_map(|row| {
            (0..f).map(move |i| {
                let y = silu_value(row[i]) * row[f + i];
                ctx.finish(Budget::det((ctx.function() + 4.0 * u) * y.abs()), y)
            })
        })
        .collect()
}

pub(super) fn gelu(ctx: &Ctx, x: &HostTensor) -> Vec<f64> {
    let u = ctx.u();
    let c = (2.0 / std::f64::consts::PI).sqrt();
    x.to_f64()
        .into_iter()
        .map(|v| {
            let y = gelu_value(v);
            let cubic = 0.044715 * v * v * v;
            let z = c * (v + cubic);
            let t = z.tanh();
            let dz = 6.0 * u * c * (v.abs() + cubic.abs());
            let dt = (1.0 - t * t) * dz + 2.0 * ctx.function();
            let err = 0.5 * v.abs() * (dt + u * (1.0 + t).abs()) + 2.0 * u * y.abs();
            ctx.finish(Budget::det(err), y)
        })
        .collect()
}
