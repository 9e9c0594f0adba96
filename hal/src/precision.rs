//! What a backend computes in, declared per op so the conformance suite can
//! derive the error an honest implementation of that computation may show.
//!
//! A declaration is a promise: the bound the suite checks follows from it,
//! so a backend that declares f32 arithmetic and rounds through bf16 fails.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dtype::DType;

/// A binary floating-point format arithmetic is carried out in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arithmetic {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (binary32's range, 8 significant bits).
    Bf16,
}

impl Arithmetic {
    /// Significant bits, the implicit one included.
    pub fn precision_bits(self) -> i32 {
        match self {
            Arithmetic::F64 => 53,
            Arithmetic::F32 => 24,
            Arithmetic::F16 => 11,
            Arithmetic::Bf16 => 8,
        }
    }

    /// Smallest exponent of a normal number.
    fn min_exponent(self) -> i32 {
        match self {
            Arithmetic::F64 => -1022,
            Arithmetic::F32 | Arithmetic::Bf16 => -126,
            Arithmetic::F16 => -14,
        }
    }

    /// Largest finite value.
    pub fn max_finite(self) -> f64 {
        match self {
            Arithmetic::F64 => f64::MAX,
            Arithmetic::F32 => f32::MAX as f64,
            Arithmetic::F16 => 65504.0,
            Arithmetic::Bf16 => half::bf16::MAX.to_f64(),
        }
    }

    /// Unit roundoff `u = 2^-p`: round to nearest moves a normal value by
    /// at most `u` relative to itself.
    pub fn unit_roundoff(self) -> f64 {
        (-(self.precision_bits() as f64)).exp2()
    }

    /// Half the spacing of this format's values around `x` (subnormals
    /// included): the most round to nearest can move `x`.
    pub fn half_ulp(self, x: f64) -> f64 {
        let a = x.abs();
        let min_spacing_exp = self.min_exponent() - self.precision_bits() + 1;
        if !a.is_finite() {
            return 0.0;
        }
        let exp = if a == 0.0 {
            self.min_exponent()
        } else {
            (a.log2().floor() as i32).max(self.min_exponent())
        };
        let spacing_exp = (exp - self.precision_bits() + 1).max(min_spacing_exp);
        0.5 * (spacing_exp as f64).exp2()
    }

    /// `x` rounded to this format (to nearest, ties to even; overflow gives
    /// an infinity).
    pub fn round(self, x: f64) -> f64 {
        match self {
            Arithmetic::F64 => x,
            Arithmetic::F32 => x as f32 as f64,
            Arithmetic::F16 => half::f16::from_f64(x).to_f64(),
            Arithmetic::Bf16 => half::bf16::from_f64(x).to_f64(),
        }
    }

    /// The format of a float dtype (`None` for i32 and quantized blocks).
    pub fn of(dtype: DType) -> Option<Arithmetic> {
        match dtype {
            DType::F32 => Some(Arithmetic::F32),
            DType::F16 => Some(Arithmetic::F16),
            DType::Bf16 => Some(Arithmetic::Bf16),
            _ => None,
        }
    }

    /// Lower-case name (`f32`).
    pub fn name(self) -> &'static str {
        match self {
            Arithmetic::F64 => "f64",
            Arithmetic::F32 => "f32",
            Arithmetic::F16 => "f16",
            Arithmetic::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for Arithmetic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a product with Q8_0/Q4_0 weights treats its float activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationQuant {
    /// Used as they are (dequantized weights times float activations).
    AsStored,
    /// Quantized to blocks of 32 int8 with `scale = max|x| / 127` (llama.cpp's Q8_0 rows).
    Int8Blocks,
    /// Quantized to blocks of 32 int16 with `scale = max|x| / 32767`.
    Int16Blocks,
}

impl ActivationQuant {
    /// The largest integer a block's largest magnitude maps to (`None` when not quantized).
    pub fn levels(self) -> Option<f64> {
        match self {
            ActivationQuant::AsStored => None,
            ActivationQuant::Int8Blocks => Some(127.0),
            ActivationQuant::Int16Blocks => Some(32767.0),
        }
    }
}

/// What one op computes in on one backend: the basis of its error bound.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Precision {
    /// The arithmetic of products, sums and every intermediate value.
    pub accumulate: Arithmetic,
    /// Float inputs are rounded to this format before use (tensor-core
    /// style), when set.
    pub inputs_rounded_to: Option<Arithmetic>,
    /// Q8_0/Q4_0 weights are dequantized into this format before use
    /// (their values `d·q` rounded to it, as a tensor-core GEMM on
    /// dequantized panels does), when set; otherwise used exactly.
    #[serde(default)]
    pub weights_dequantized_to: Option<Arithmetic>,
    /// Attention's softmax weights are rounded to this format before they
    /// multiply V (an attention whose second product runs on an f16 cube
    /// unit), when set.
    #[serde(default)]
    pub probabilities_rounded_to: Option<Arithmetic>,
    /// What products with Q8_0/Q4_0 weights do with their activations.
    pub activations: ActivationQuant,
    /// The result is rounded to this format before it is written to the
    /// output (a product whose kernel writes f16), when set.
    pub result_rounded_to: Option<Arithmetic>,
    /// Largest error of `exp`, `tanh`, `sqrt`/`rsqrt`, `pow` and the
    /// reciprocal, relative to the result, and of `sin`/`cos`, absolute,
    /// in units of [`Arithmetic::unit_roundoff`] of `accumulate`.
    pub function_ulps: f64,
}

impl Precision {
    /// f32 arithmetic throughout, inputs as stored, elementary functions
    /// within 4 units of roundoff (what a libm-quality f32 path gives).
    pub const F32: Precision = Precision {
        accumulate: Arithmetic::F32,
        inputs_rounded_to: None,
        weights_dequantized_to: None,
        probabilities_rounded_to: None,
        activations: ActivationQuant::AsStored,
        result_rounded_to: None,
        function_ulps: 4.0,
    };

    /// f64 arithmetic, as the reference computes.
    pub const F64: Precision = Precision {
        accumulate: Arithmetic::F64,
        inputs_rounded_to: None,
        weights_dequantized_to: None,
        probabilities_rounded_to: None,
        activations: ActivationQuant::AsStored,
        result_rounded_to: None,
        function_ulps: 2.0,
    };

    /// The same with activations of quantized-weight products treated as `activations`.
    pub fn with_activations(self, activations: ActivationQuant) -> Self {
        Precision {
            activations,
            ..self
        }
    }

    /// The same with elementary functions within `ulps` units of roundoff.
    pub fn with_function_ulps(self, ulps: f64) -> Self {
        Precision {
            function_ulps: ulps,
            ..self
        }
    }

    /// One line for reports: `f32 accumulation, int8 activation blocks, functions ±4u`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} arithmetic", self.accumulate);
        if let Some(r) = self.inputs_rounded_to {
            s.push_str(&format!(", inputs rounded to {r}"));
        }
        if let Some(r) = self.weights_dequantized_to {
            s.push_str(&format!(", quantized weights dequantized to {r}"));
        }
        if let Some(r) = self.probabilities_rounded_to {
            s.push_str(&format!(", softmax weights rounded to {r}"));
        }
        match self.activations {
            ActivationQuant::AsStored => {}
            ActivationQuant::Int8Blocks => s.push_str(", int8 activation blocks"),
            ActivationQuant::Int16Blocks => s.push_str(", int16 activation blocks"),
        }
        if let Some(r) = self.result_rounded_to {
            s.push_str(&format!(", result rounded to {r}"));
        }
        s.push_str(&format!(", functions within {}u", self.function_ulps));
        s
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_ulps_match_the_spacing_of_each_format() {
        assert_eq!(Arithmetic::F32.half_ulp(1.0), 2f64.powi(-24));
        assert_eq!(Arithmetic::F32.half_ulp(1.5), 2f64.powi(-24));
        assert_eq!(Arithmetic::F32.half_ulp(0.75), 2f64.powi(-25));
        assert_eq!(Arithmetic::F16.half_ulp(1.0), 2f64.powi(-11));
        assert_eq!(Arithmetic::Bf16.half_ulp(3.0), 2f64.powi(-7));
        // Subnormals: a fixed spacing below the smallest normal.
        assert_eq!(Arithmetic::F16.half_ulp(1e-7), 2f64.powi(-25));
        assert_eq!(Arithmetic::F16.half_ulp(0.0), 2f64.powi(-25));
        assert_eq!(Arithmetic::F32.half_ulp(1e-45), 2f64.powi(-150));
        // Round to nearest never moves a value further than half an ulp.
        let mut rng = crate::Rng::new(3);
        for _ in 0..10_000 {
            // An f32 value, so that rounding it to f16 or bf16 is one rounding.
            let x = (rng.uniform(-1.0, 1.0) as f64 * 10f64.powi(rng.below(12) as i32 - 6)) as f32
                as f64;
            for a in [Arithmetic::F32, Arithmetic::F16, Arithmetic::Bf16] {
                if x.abs() > a.max_finite() {
                    continue;
                }
                assert!((a.round(x) - x).abs() <= a.half_ulp(x), "{a} {x}");
            }
        }
    }

    #[test]
    fn declarations_describe_themselves() {
        let p = Precision::F32.with_activations(ActivationQuant::Int8Blocks);
        assert_eq!(
            p.describe(),
            "f32 arithmetic, int8 activation blocks, functions within 4u"
        );
        assert_eq!(Arithmetic::F32.unit_roundoff(), 2f64.powi(-24));
    }
}
