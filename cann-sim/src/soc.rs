//! Per-SoC capability tables: what each Ascend part accepts for the aclnn
//! ops the backend calls, and the arithmetic its cube unit uses. The facts
//! and the document each comes from are listed in docs/PORTING-CANN.md; a
//! call outside them fails as on the part.

use crate::state::{code, State};
use crate::tensor::Elem;

/// The SoC families whose aclnn support differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Soc {
    /// Atlas A2/A3 training and 800I A2 inference (Ascend 910B, 910_93).
    A2,
    /// Atlas training series (the first Ascend 910, "910A").
    Training,
    /// Atlas inference series (Ascend 310P).
    Inference,
}

/// The widest N one aclnnWeightQuantBatchMatmulV2 call takes.
pub const WEIGHT_QUANT_MAX_N: usize = 65535;

/// What a cube op does to its float inputs before the products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CubeInputs {
    /// Used as stored.
    AsStored,
    /// Rounded to f16 (f32 inputs with ALLOW_FP32_DOWN_PRECISION or USE_FP16
    /// where the cube has no f32 path).
    F16,
    /// Rounded to HFLOAT32 (f32's range, 11 significant bits).
    Hf32,
}

impl CubeInputs {
    /// `v` as the cube unit sees it.
    pub fn apply(self, v: f64) -> f64 {
        match self {
            CubeInputs::AsStored => v,
            CubeInputs::F16 => glmhal_hal::Arithmetic::F16.round(v),
            CubeInputs::Hf32 => round_significand(v, 11),
        }
    }
}

/// `v` rounded to `bits` significant bits (ties to even), exponent unbounded.
fn round_significand(v: f64, bits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let e = v.abs().log2().floor() as i32;
    let step = 2f64.powi(e - bits + 1);
    let q = v / step;
    let r = q.round();
    let r = if (q - q.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - q.signum()
    } else {
        r
    };
    r * step
}

impl Soc {
    /// The family of the SoC the simulator reports.
    pub fn current() -> Soc {
        Soc::of(&crate::runtime::soc_name())
    }

    /// The family of a SoC name (`Ascend910B3`, `Ascend910A`, `Ascend310P3`).
    pub fn of(name: &str) -> Soc {
        if name.contains("310P") {
            Soc::Inference
        } else if name.contains("910B") || name.contains("910_93") {
            Soc::A2
        } else if name.contains("910") {
            Soc::Training
        } else {
            Soc::A2
        }
    }

    /// The documentation's name of the product line.
    pub fn product(self) -> &'static str {
        match self {
            Soc::A2 => "Atlas A2 training / 800I A2 inference",
            Soc::Training => "Atlas training series",
            Soc::Inference => "Atlas inference series",
        }
    }

    /// BFLOAT16 tensors: only on Atlas A2.
    pub fn has_bf16(self) -> bool {
        self == Soc::A2
    }

    /// aclnnRotaryPositionEmbedding: Atlas A2 only.
    pub fn has_rotary_position_embedding(self) -> bool {
        self == Soc::A2
    }

    /// aclnnRmsNorm: not on the training series.
    pub fn has_rms_norm(self) -> bool {
        self != Soc::Training
    }

    /// aclnnLayerNorm: not on the inference series.
    pub fn has_layer_norm(self) -> bool {
        self != Soc::Inference
    }

    /// aclnnWeightQuantBatchMatmulV2: Atlas A2 and the inference series.
    pub fn has_weight_quant_matmul(self) -> bool {
        self != Soc::Training
    }

    /// How aclnnMm/Matmul/BatchMatMul treat inputs of `dtype` under
    /// `cube_math_type`, or the reason the call fails.
    pub fn cube_inputs(self, dtype: Elem, cube_math_type: i8) -> Result<CubeInputs, String> {
        let f32_unit = self == Soc::A2;
        match (dtype, cube_math_type) {
            (_, t) if !(0..=3).contains(&t) => Err(format!(
                "cubeMathType {t} is not KEEP_DTYPE (0), ALLOW_FP32_DOWN_PRECISION (1), USE_FP16 (2) or USE_HF32 (3)"
            )),
            (Elem::F32, 0) if !f32_unit => Err(format!(
                "cubeMathType KEEP_DTYPE (0) with DT_FLOAT inputs is not supported on the {}",
                self.product()
            )),
            (Elem::F32, 3) if !f32_unit => Err(format!(
                "cubeMathType USE_HF32 (3) is not supported on the {}",
                self.product()
            )),
            (Elem::F32, 0) => Ok(CubeInputs::AsStored),
            (Elem::F32, 1 | 3) if f32_unit => Ok(CubeInputs::Hf32),
            (Elem::F32, _) => Ok(CubeInputs::F16),
            (Elem::F16 | Elem::Bf16, 3) => Err(format!(
                "cubeMathType USE_HF32 (3) takes DT_FLOAT inputs, not {dtype}"
            )),
            _ => Ok(CubeInputs::AsStored),
        }
    }
}

/// Refuses `call` (of aclnn op `op`) unless the current SoC has the op.
pub(crate) fn require(
    s: &mut State,
    call: &str,
    op: &str,
    available: fn(Soc) -> bool,
) -> Result<(), i32> {
    let soc = Soc::current();
    if available(soc) {
        return Ok(());
    }
    Err(s.violation(
        call,
        format!("aclnn{op} is not supported on the {}", soc.product()),
        code::INVALID_PARAM,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_follow_the_soc_name() {
        assert_eq!(Soc::of("Ascend910B3"), Soc::A2);
        assert_eq!(Soc::of("Ascend910_9391"), Soc::A2);
        assert_eq!(Soc::of("Ascend910A"), Soc::Training);
        assert_eq!(Soc::of("Ascend910ProB"), Soc::Training);
        assert_eq!(Soc::of("Ascend310P3"), Soc::Inference);
    }

    #[test]
    fn keep_dtype_with_f32_fails_where_the_cube_has_no_f32() {
        assert!(Soc::Training.cube_inputs(Elem::F32, 0).is_err());
        assert!(Soc::Inference.cube_inputs(Elem::F32, 0).is_err());
        assert_eq!(Soc::A2.cube_inputs(Elem::F32, 0), Ok(CubeInputs::AsStored));
        assert_eq!(
            Soc::Inference.cube_inputs(Elem::F32, 1),
            Ok(CubeInputs::F16)
        );
        assert_eq!(
            Soc::Inference.cube_inputs(Elem::F16, 0),
            Ok(CubeInputs::AsStored)
        );
    }

    #[test]
    fn hf32_keeps_eleven_significant_bits() {
        assert_eq!(CubeInputs::Hf32.apply(1.0 + 2f64.powi(-11)), 1.0);
        assert_eq!(
            CubeInputs::Hf32.apply(1.0 + 3.0 * 2f64.powi(-11)),
            1.0 + 2f64.powi(-9)
        );
        assert_eq!(CubeInputs::Hf32.apply(1e30), round_significand(1e30, 11));
        assert_eq!(CubeInputs::F16.apply(1.0 + 2f64.powi(-12)), 1.0);
    }
}
