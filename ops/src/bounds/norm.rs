//! Bounds of rms_norm and layer_norm.
//!
//! rms_norm, per row of `h` values: the sum of squares carries its
//! accumulation error `B`, so `ms + eps` a relative error
//! `ε_m = (B/h + 2u·ms)/(ms + eps) + u`; `r = 1/√(ms + eps)` half of that
//! plus the function's error and a rounding; `n = x·r` one more rounding.
//! GLM rounds `n` to the activation dtype before the weight, so two honest
//! implementations may land on neighbouring values there: the bound takes
//! the rounded values at both ends of `n·(1 ± ε_n)`, exactly as the
//! reference rounds. Then `y = w·n`, one rounding.
//!
//! layer_norm: the mean's summation error `δm`, the variance's (two-pass or
//! one-pass: both are covered, the latter with its cancellation `2|m|·δm`),
//! then the same steps as above with `x − m` carrying `δm`.

use glmhal_hal::{quant::round_to, HostTensor};

use super::{Budget, Ctx, Perturbations, Sum};

pub(super) fn rms_norm(ctx: &Ctx, x: &HostTensor, w: &HostTensor, eps: f64) -> Vec<f64> {
    let h = x.desc.last_dim();
    let (xs, ws) = (x.to_f64(), w.to_f64());
    let u = ctx.u();
    let dtype = x.desc.dtype;
    let round = |v: f64| round_to(dtype, v as f32) as f64;
    let mut out = Vec::with_capacity(xs.len());
    for row in xs.chunks_exact(h) {
        let mut squares = Sum::default();
        for v in row {
            squares.push(v * v);
        }
        let ms = squares.sum / h as f64;
        let ms_eps = ms + eps;
        let eps_m = (squares.rounding(u).bound() / h as f64 + 2.0 * u * ms) / ms_eps + u;
        let r = 1.0 / ms_eps.sqrt();
        let eps_n = eps_m / 2.0 + ctx.function() + 2.0 * u;
        for (v, g) in row.iter().zip(&ws) {
            let n = v * r;
            let rounded = round(n);
            let (lo, hi) = (round(n - eps_n * n.abs()), round(n + eps_n * n.abs()));
            let moved = (lo - rounded).abs().max((hi - rounded).abs());
            let y = rounded * g;
            out.push(ctx.finish(Budget::det(g.abs() * moved + u * y.abs()), y));
        }
    }
    out
}

pub(super) fn layer_norm(
    ctx: &Ctx,
    x: &HostTensor,
    w: &HostTensor,
    b: &HostTensor,
    eps: f64,
) -> Vec<f64> {
    let h = x.desc.last_dim();
    let hf = h as f64;
    let (xs, ws, bs) = (x.to_f64(), w.to_f64(), b.to_f64());
    let u = ctx.u();
    let mut out = Vec::with_capacity(xs.len());
    for row in xs.chunks_exact(h) {
        let mut total = Sum::default();
        let mut squares = Sum::default();
        for v in row {
            total.push(*v);
            squares.push(v * v);
        }
        let mean = total.sum / hf;
        let d_mean = total.rounding_of_sum(u).bound() / hf + 2.0 * u * mean.abs();
        let mut centred = Sum::default();
        let mut subtraction = Perturbations::default();
        for v in row {
            let d = v - mean;
            centred.push(d * d);
            subtraction.push(2.0 * u * d * d);
        }
        let var = centred.sum / hf;
        let d_var = (squares.rounding(u).bound()
            + centred.rounding(u).bound()
            + subtraction.budget().bound())
            / hf
            + 2.0 * mean.abs() * d_mean
            + d_mean * d_mean
            + 2.0 * u * (mean * mean + var);
        let eps_r = (d_var / (var + eps) + u) / 2.0 + ctx.function() + u;
        let r = 1.0 / (var + eps).sqrt();
        for ((v, g), bias) in row.iter().zip(&ws).zip(&bs) {
            let d = v - mean;
            let y = d * r * g + bias;
            let err = (r * g).abs() * (d_mean + u * d.abs())
                + (d * r * g).abs() * (eps_r + 2.0 * u)
                + u * y.abs();
            out.push(ctx.finish(Budget::det(err), y));
        }
    }
    out
}
