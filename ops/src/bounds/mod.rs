//! Per-element error bounds: how far an honest implementation of an op may
//! land from the exact result, given what it declares it computes in
//! ([`Precision`]).
//!
//! The exact result is [`crate::reference::values`]: the op evaluated in
//! f64 on the inputs as stored, before any rounding to the output dtype.
//! Each bound follows the standard forward error analysis of the
//! computation, step by step, in the declared arithmetic:
//!
//! - Every rounding in a format with unit roundoff `u` moves a value `v` by
//!   `δ·v` with `|δ| ≤ u`. Following Higham and Mary ("A new approach to
//!   probabilistic rounding error analysis", 2019), the roundings of a long
//!   sum are treated as independent and of mean zero, so their total is
//!   sub-Gaussian with variance at most `u²·Σ v²` over the values rounded,
//!   and exceeds [`LAMBDA`] standard deviations with probability at most
//!   `2·exp(−LAMBDA²/2)` (about 2.5e-14 per element). For a dot product in
//!   index order the values rounded are the products `tᵢ` and the partial
//!   sums `sₖ = Σᵢ≤ₖ tᵢ`: the bound is `LAMBDA·u·√(Σ sₖ² + Σ tᵢ²)`. This is
//!   the form that stays tight: on random-sign data the partial sums grow
//!   like a random walk and the bound scales as `√K·u·√Σtᵢ²`; on same-sign
//!   data (a softmax denominator) as `K^1.5·u·mean`, as real errors do.
//!   Lane-parallel and tree orders add shorter partial sums and so stay
//!   inside it. Where the worst case `γ_K·Σ|tᵢ|` (`γ_K = K·u/(1−K·u)`) is
//!   smaller, it is used instead: it holds always.
//! - Inputs rounded to a narrower format, and activations quantized to
//!   blocks, move each input by at most half a step: the same treatment.
//! - Elementary functions (`exp`, `tanh`, `rsqrt`, `pow`, `sin`, `cos`) err
//!   by at most the declared [`Precision::function_ulps`] units of roundoff,
//!   added in full.
//! - Errors carried into a later step are multiplied by that step's
//!   sensitivity to them (its derivative), then the step's own roundings
//!   are added.
//! - Finally one rounding to the output dtype (half an ulp of the result)
//!   and the reference's own f64 error.
//!
//! Correctly rounded ops (casts, copies, `add`, `mul`, `scale` when the
//! arithmetic is the output's format) get only the half ulp: they are exact.

mod attention;
mod experts;
mod linear;
mod norm;
mod pointwise;
mod rope;

use glmhal_hal::{Arithmetic, DType, HalError, HostTensor, Op, Precision, Result, TensorDesc};

/// Standard deviations of accumulated rounding error a bound allows.
pub const LAMBDA: f64 = 8.0;

/// Unit roundoff of f64: the reference's own error per step.
const F64_U: f64 = f64::EPSILON / 2.0;

/// How a case's output is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The decoded output must equal the reference's, rounded once to the
    /// output dtype (copies, conversions, indices).
    Exact,
    /// Every element within its bound of the exact value.
    Bounded,
}

impl Rule {
    /// `exact` or `bounded`.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Exact => "exact",
            Rule::Bounded => "bounded",
        }
    }
}

/// How `op` is judged.
pub fn rule(op: &Op) -> Rule {
    match op {
        Op::GetRows | Op::Cast | Op::KvWrite | Op::Argmax | Op::MoeSelect { .. } => Rule::Exact,
        _ => Rule::Bounded,
    }
}

/// Per element of output 0 (logical order), how far from
/// [`crate::reference::values`] an implementation computing as `precision`
/// says may land. Zero for [`Rule::Exact`] ops.
pub fn error_bounds(
    op: &Op,
    inputs: &[HostTensor],
    output: &TensorDesc,
    precision: &Precision,
) -> Result<Vec<f64>> {
    let in_descs: Vec<TensorDesc> = inputs.iter().map(|t| t.desc.clone()).collect();
    crate::validate(op, &in_descs, std::slice::from_ref(output))?;
    let ctx = Ctx {
        p: *precision,
        out: Arithmetic::of(output.dtype),
    };
    match op {
        Op::GetRows | Op::Cast | Op::KvWrite | Op::Argmax => Ok(vec![0.0; output.numel()]),
        Op::MatMul { .. } => Ok(linear::mat_mul(&ctx, inputs)),
        Op::BatchedMatMul => Ok(linear::batched(&ctx, &inputs[0], &inputs[1])),
        Op::RmsNorm { eps } => Ok(norm::rms_norm(&ctx, &inputs[0], &inputs[1], *eps)),
        Op::LayerNorm { eps } => Ok(norm::layer_norm(
            &ctx, &inputs[0], &inputs[1], &inputs[2], *eps,
        )),
        Op::Rope { rot, theta, mode } => Ok(rope::rope(
            &ctx,
            &inputs[0],
            &inputs[1].to_i32()?,
            *rot,
            *theta,
            *mode,
        )),
        Op::Attention { scale, causal } => Ok(attention::attention(
            &ctx, &inputs[0], &inputs[1], &inputs[2], *scale, *causal,
        )),
        Op::Softmax { scale, causal } => Ok(attention::softmax(&ctx, &inputs[0], *scale, *causal)),
        Op::SwiGlu => Ok(pointwise::swiglu(&ctx, &inputs[0])),
        Op::Silu => Ok(pointwise::silu(&ctx, &inputs[0])),
        Op::Gelu => Ok(pointwise::gelu(&ctx, &inputs[0])),
        Op::Add => Ok(pointwise::add(&ctx, &inputs[0], &inputs[1])),
        Op::Mul => Ok(pointwise::mul(&ctx, &inputs[0], &inputs[1])),
        Op::Scale { factor } => Ok(pointwise::scale(&ctx, &inputs[0], *factor)),
        Op::Quantize => quantize_ties(&inputs[0], output.dtype),
        Op::MatMulId => experts::mat_mul_id(&ctx, inputs),
        Op::MoeSelect {
            top_k,
            n_group,
            topk_group,
        } => {
            let routing = crate::reference::experts::Routing {
                top_k: *top_k,
                n_group: *n_group,
                topk_group: *topk_group,
            };
            experts::moe_select_decidable(&ctx, &inputs[0], &inputs[1], routing)?;
            Ok(vec![0.0; output.numel()])
        }
        Op::MoeWeights { normalize, scale } => {
            experts::moe_weights(&ctx, &inputs[0], &inputs[1], (*normalize, *scale))
        }
    }
}

/// The declaration and the output format, as every op's bound needs them.
pub(crate) struct Ctx {
    /// What the backend computes in.
    pub p: Precision,
    /// The output's float format.
    pub out: Option<Arithmetic>,
}

impl Ctx {
    /// Unit roundoff of the declared arithmetic.
    pub fn u(&self) -> f64 {
        self.p.accumulate.unit_roundoff()
    }

    /// The declared error of one elementary function, relative (absolute
    /// for sin and cos).
    pub fn function(&self) -> f64 {
        self.p.function_ulps * self.u()
    }

    /// What rounding `x` to the output dtype, and the reference's own f64
    /// error on it, may add.
    pub fn output(&self, x: f64) -> f64 {
        self.out.map_or(0.0, |a| a.half_ulp(x)) + 4.0 * F64_U * x.abs()
    }

    /// The final bound of an element whose computation carries `budget`
    /// (its roundings in the declared arithmetic included) and whose exact
    /// value is `x`: the budget and the rounding to the output format.
    pub fn finish(&self, budget: Budget, x: f64) -> f64 {
        let result = self.p.result_rounded_to.map_or(0.0, |r| r.half_ulp(x));
        budget.bound() + result + self.output(x)
    }

    /// The half step of input rounding to the declared narrower format
    /// applied to `v` stored as `dtype` (0 when the declaration rounds
    /// nothing or `dtype` already fits).
    pub fn input_rounding(&self, dtype: DType, v: f64) -> f64 {
        match (self.p.inputs_rounded_to, Arithmetic::of(dtype)) {
            (Some(r), Some(stored)) if r.precision_bits() < stored.precision_bits() => {
                r.half_ulp(v)
            }
            _ => 0.0,
        }
    }

    /// The most dequantizing a `dtype` (Q8_0/Q4_0) weight of value `v` into
    /// the declared format moves it: `v = d·q` has the f16 scale's 11
    /// significant bits times the integer's (8 or 4), so a narrower format
    /// rounds it (0 when nothing is declared or the format holds it).
    pub fn dequantized_rounding(&self, dtype: DType, v: f64) -> f64 {
        let bits = if dtype == DType::Q8_0 { 11 + 8 } else { 11 + 4 };
        match self.p.weights_dequantized_to {
            Some(r) if r.precision_bits() < bits => r.half_ulp(v),
            _ => 0.0,
        }
    }

    /// The half step of rounding a softmax weight `p` to the declared
    /// format before it multiplies V, 0 without one. The weight rounded is
    /// the computed one, which may lie just above `p` in the next binade:
    /// the step is taken at `p·(1 + 2⁻⁸)`, which covers computed weights
    /// within a relative 2⁻⁸ of `p` (any weight whose error is small enough
    /// for the bound to mean anything).
    pub fn probability_rounding(&self, p: f64) -> f64 {
        self.p
            .probabilities_rounded_to
            .map_or(0.0, |r| r.half_ulp(p * (1.0 + 2f64.powi(-8))))
    }

    /// The half step of rounding a computed value `v` (not an input as
    /// stored) to the declared narrower format, 0 without one.
    pub fn declared_rounding(&self, v: f64) -> f64 {
        self.p.inputs_rounded_to.map_or(0.0, |r| r.half_ulp(v))
    }

    /// One rounding in the declared arithmetic of a value whose result is
    /// `x`, when that arithmetic is wider than the output (so the output's
    /// own rounding comes on top).
    pub fn intermediate(&self, x: f64) -> f64 {
        match self.out {
            Some(o) if o == self.p.accumulate => 0.0,
            _ => self.p.accumulate.half_ulp(x),
        }
    }
}

/// An error budget: a part that holds always (`det`) and a sub-Gaussian
/// part of variance `var` (independent roundings), allowed [`LAMBDA`]
/// standard deviations.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Budget {
    /// Worst-case part.
    pub det: f64,
    /// Variance of the random part.
    pub var: f64,
}

impl Budget {
    /// A worst-case amount.
    pub fn det(x: f64) -> Budget {
        Budget { det: x, var: 0.0 }
    }

    /// Whichever of two bounds on the same error is smaller: `worst`,
    /// which always holds, or the sub-Gaussian one of variance `var`.
    pub fn least(worst: f64, var: f64) -> Budget {
        if worst <= LAMBDA * var.sqrt() {
            Budget::det(worst)
        } else {
            Budget { det: 0.0, var }
        }
    }

    /// The bound it allows.
    pub fn bound(self) -> f64 {
        self.det + LAMBDA * self.var.sqrt()
    }

    /// The budget of `c` times the error.
    pub fn times(self, c: f64) -> Budget {
        Budget {
            det: self.det * c.abs(),
            var: self.var * c * c,
        }
    }
}

impl std::ops::Add for Budget {
    type Output = Budget;
    fn add(self, o: Budget) -> Budget {
        Budget {
            det: self.det + o.det,
            var: self.var + o.var,
        }
    }
}

impl std::ops::AddAssign for Budget {
    fn add_assign(&mut self, o: Budget) {
        *self = *self + o;
    }
}

/// Running statistics of a sum of terms in index order, from which the
/// error of accumulating it follows.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sum {
    /// The exact sum.
    pub sum: f64,
    /// Σ of the squared partial sums.
    prefix_sq: f64,
    /// Σ of the squared terms.
    term_sq: f64,
    /// Σ of the terms' magnitudes.
    pub term_abs: f64,
    /// Terms so far.
    n: usize,
}

impl Sum {
    /// Adds a term.
    #[inline]
    pub fn push(&mut self, t: f64) {
        self.sum += t;
        self.prefix_sq += self.sum * self.sum;
        self.term_sq += t * t;
        self.term_abs += t.abs();
        self.n += 1;
    }

    /// Error of forming each term (a product, rounded once) and summing
    /// them in arithmetic of unit roundoff `u`, plus the reference's own.
    pub fn rounding(&self, u: f64) -> Budget {
        let worst = gamma(self.n + 1, u) * self.term_abs;
        let var = u * u * (self.prefix_sq + self.term_sq);
        Budget::least(worst, var) + Budget::det(gamma(self.n + 1, F64_U) * self.term_abs)
    }

    /// Error of rounding each term once more (a product scaled by a
    /// constant before it is summed).
    pub fn term_rounding(&self, u: f64) -> Budget {
        Budget::least(u * self.term_abs, u * u * self.term_sq)
    }

    /// Error of summing terms that are exact (no rounding of the terms).
    pub fn rounding_of_sum(&self, u: f64) -> Budget {
        let worst = gamma(self.n, u) * self.term_abs;
        let var = u * u * self.prefix_sq;
        Budget::least(worst, var) + Budget::det(gamma(self.n, F64_U) * self.term_abs)
    }
}

/// Independent perturbations `eᵢ` with `|eᵢ| ≤ bᵢ`, summed: a budget that
/// is the smaller of `Σbᵢ` and the sub-Gaussian `Σbᵢ²`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Perturbations {
    abs: f64,
    sq: f64,
}

impl Perturbations {
    /// Adds one perturbation bounded by `b`.
    #[inline]
    pub fn push(&mut self, b: f64) {
        self.abs += b;
        self.sq += b * b;
    }

    /// Their budget.
    pub fn budget(&self) -> Budget {
        Budget::least(self.abs, self.sq)
    }
}

/// `γ_n = n·u / (1 − n·u)`, infinite when `n·u ≥ 1/2` (no worst-case bound).
pub(crate) fn gamma(n: usize, u: f64) -> f64 {
    let nu = n as f64 * u;
    if nu >= 0.5 {
        f64::INFINITY
    } else {
        nu / (1.0 - nu)
    }
}

/// For quantize: the step `d` of a block at elements whose scaled value
/// lies within a few f32 ulps of a rounding boundary (where two honest
/// implementations may round either way), else 0.
fn quantize_ties(x: &HostTensor, dtype: DType) -> Result<Vec<f64>> {
    let k = x.desc.last_dim();
    let values = x.to_f32();
    let mut out = Vec::with_capacity(values.len());
    for row in values.chunks_exact(k) {
        for block in row.chunks_exact(glmhal_hal::QUANT_BLOCK) {
            let d = match dtype {
                DType::Q8_0 => block.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0,
                DType::Q4_0 => {
                    let max = block
                        .iter()
                        .fold(0.0f32, |m, v| if v.abs() > m.abs() { *v } else { m });
                    max / -8.0
                }
                other => {
                    return Err(HalError::invalid(
                        "quantize",
                        format!("{other} is not a quantized dtype"),
                    ))
                }
            };
            // Values are scaled by 1/d in f32 (d before its rounding to the
            // stored f16); both formats move to the next step where the
            // scaled value crosses k + 1/2.
            let step = half::f16::from_f32(d).to_f64().abs();
            for v in block {
                let scaled = if d == 0.0 { 0.0 } else { (*v / d) as f64 };
                let frac = (scaled.abs() + 0.5).fract();
                let near =
                    frac.min(1.0 - frac) <= 8.0 * f32::EPSILON as f64 * scaled.abs().max(1.0);
                out.push(if near { step } else { 0.0 });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
