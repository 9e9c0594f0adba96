//! Bounds of mat_mul and batched_mat_mul: dot products.
//!
//! Per output `y = Σₖ xₖ·wₖ (+ b)`:
//! - the products and partial sums rounded in the declared arithmetic
//!   ([`Sum::rounding`]);
//! - inputs rounded to a narrower format: `xₖ` moves by at most half its
//!   ulp there, so `y` by `Σₖ half_ulp(xₖ)·|wₖ|` (and the same for `w`),
//!   independent per element; a Q8_0/Q4_0 weight dequantized into a
//!   narrower format likewise (its `d·q` has up to 19 or 15 significant bits);
//! - activations quantized to blocks (with Q8_0/Q4_0 weights): each `xₖ`
//!   of block `b` moves by at most `d_b/2`, `d_b = max|x in b| / levels`,
//!   so `y` by `Σ_b d_b/2·Σ_{k in b}|wₖ|`, independent per element; each
//!   block's integer sum is then scaled by two scales in the arithmetic
//!   (two roundings of the block's partial product);
//! - the bias added: one rounding of `y` (and, where the declaration
//!   rounds results, the product's rounding before the bias).

use glmhal_hal::{DType, HostTensor, QUANT_BLOCK};

use super::{Budget, Ctx, Perturbations, Sum};

pub(super) fn mat_mul(ctx: &Ctx, inputs: &[HostTensor]) -> Vec<f64> {
    let (x, w, bias) = (&inputs[0], &inputs[1], inputs.get(2));
    let (m, k) = (x.desc.shape[0], x.desc.shape[1]);
    let n = w.desc.shape[0];
    let (xs, ws) = (x.to_f64(), w.to_f64());
    let bs = bias.map(|b| b.to_f64());
    let u = ctx.u();
    let dots = Dots::new(ctx, x.desc.dtype, w.desc.dtype, &xs, &ws);
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (dot, mut budget) = dots.dot(i, j, k);
            let mut y = dot;
            if let Some(b) = &bs {
                y += b[j];
                // The bias may be added after the product was rounded to
                // the declared result format, and may itself be rounded.
                let rounded = ctx.p.result_rounded_to.map_or(0.0, |r| r.half_ulp(dot));
                let bias_moved = bias.map_or(0.0, |t| ctx.input_rounding(t.desc.dtype, b[j]));
                budget += Budget::det(u * y.abs() + rounded + bias_moved);
            }
            out.push(ctx.finish(budget, y));
        }
    }
    out
}

/// The dot products of activation rows with weight rows, and what their
/// bounds need: per activation block its quantization half step, per
/// weight block `Σ|w|` and `Σw²` (when activations are quantized).
pub(super) struct Dots<'a> {
    ctx: &'a Ctx,
    dtypes: (DType, DType),
    xs: &'a [f64],
    ws: &'a [f64],
    quantized: bool,
    half_steps: Vec<f64>,
    weight_blocks: Vec<(f64, f64)>,
}

impl<'a> Dots<'a> {
    /// Rows of `xs` (dtype `x`) against rows of `ws` (dtype `w`).
    pub(super) fn new(ctx: &'a Ctx, x: DType, w: DType, xs: &'a [f64], ws: &'a [f64]) -> Self {
        let u = ctx.u();
        let levels = if w.is_quantized() {
            ctx.p.activations.levels()
        } else {
            None
        };
        let half_steps = match levels {
            Some(l) => xs
                .chunks_exact(QUANT_BLOCK)
                .map(|b| b.iter().fold(0.0f64, |a, v| a.max(v.abs())) / l * (0.5 + u))
                .collect(),
            None => Vec::new(),
        };
        let weight_blocks = match levels {
            Some(_) => ws
                .chunks_exact(QUANT_BLOCK)
                .map(|b| {
                    (
                        b.iter().map(|v| v.abs()).sum(),
                        b.iter().map(|v| v * v).sum(),
                    )
                })
                .collect(),
            None => Vec::new(),
        };
        Dots {
            ctx,
            dtypes: (x, w),
            xs,
            ws,
            quantized: levels.is_some(),
            half_steps,
            weight_blocks,
        }
    }

    /// Activation row `i` times weight row `j` (both of length `k`): the
    /// exact value and its error budget.
    pub(super) fn dot(&self, i: usize, j: usize, k: usize) -> (f64, Budget) {
        let ctx = self.ctx;
        let u = ctx.u();
        let xr = &self.xs[i * k..(i + 1) * k];
        let wr = &self.ws[j * k..(j + 1) * k];
        let mut sum = Sum::default();
        for (a, b) in xr.iter().zip(wr) {
            sum.push(a * b);
        }
        let mut budget = sum.rounding(u);
        if ctx.p.inputs_rounded_to.is_some() || ctx.p.weights_dequantized_to.is_some() {
            budget += input_rounding(ctx, self.dtypes, xr, wr);
        }
        if self.quantized {
            let blocks = k / QUANT_BLOCK;
            let steps = &self.half_steps[i * blocks..(i + 1) * blocks];
            let wb = &self.weight_blocks[j * blocks..(j + 1) * blocks];
            let worst: f64 = steps.iter().zip(wb).map(|(d, (abs, _))| d * abs).sum();
            let var: f64 = steps.iter().zip(wb).map(|(d, (_, sq))| d * d * sq).sum();
            budget += Budget::least(worst, var);
            let mut scaling = Perturbations::default();
            for (xb, wb) in xr
                .chunks_exact(QUANT_BLOCK)
                .zip(wr.chunks_exact(QUANT_BLOCK))
            {
                let partial: f64 = xb.iter().zip(wb).map(|(a, b)| a * b).sum();
                scaling.push(2.0 * u * partial.abs());
            }
            budget += scaling.budget();
        }
        (sum.sum, budget)
    }
}

/// The error of rounding both operands of a dot product to the declared
/// narrower format.
fn input_rounding(ctx: &Ctx, (x, w): (DType, DType), xr: &[f64], wr: &[f64]) -> Budget {
    let mut p = Perturbations::default();
    for (a, b) in xr.iter().zip(wr) {
        let moved = ctx.input_rounding(x, *a) * b.abs()
            + if w.is_quantized() {
                ctx.dequantized_rounding(w, *b) * a.abs()
            } else {
                ctx.input_rounding(w, *b) * a.abs()
            };
        p.push(moved);
    }
    p.budget()
}

pub(super) fn batched(ctx: &Ctx, a: &HostTensor, b: &HostTensor) -> Vec<f64> {
    let (batch, m, k) = (a.desc.shape[0], a.desc.shape[1], a.desc.shape[2]);
    let n = b.desc.shape[2];
    let (av, bv) = (a.to_f64(), b.to_f64());
    let u = ctx.u();
    let rounds_inputs = ctx.p.inputs_rounded_to.is_some();
    let mut out = Vec::with_capacity(batch * m * n);
    let mut column = vec![0.0; k];
    for z in 0..batch {
        for i in 0..m {
            let ar = &av[(z * m + i) * k..(z * m + i + 1) * k];
            for j in 0..n {
                for (p, c) in column.iter_mut().enumerate() {
                    *c = bv[(z * k + p) * n + j];
                }
                let mut sum = Sum::default();
                for (x, y) in ar.iter().zip(&column) {
                    sum.push(x * y);
                }
                let mut budget = sum.rounding(u);
                if rounds_inputs {
                    budget += input_rounding(ctx, (a.desc.dtype, b.desc.dtype), ar, &column);
                }
                out.push(ctx.finish(budget, sum.sum));
            }
        }
    }
    out
}
