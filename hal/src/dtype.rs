//! Element types, including the block-quantized GGUF formats.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::HalError;

/// Number of weights in one Q8_0 or Q4_0 block (the GGUF `QK8_0`/`QK4_0`).
pub const QUANT_BLOCK: usize = 32;

/// An element type of a tensor.
///
/// Q8_0 and Q4_0 are stored in the GGUF block layout: a block of 32 weights is
/// an f16 scale followed by the quantized values (see [`crate::quant`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary16.
    F16,
    /// bfloat16: the upper half of an f32.
    Bf16,
    /// Signed 32-bit integer (token ids, positions, argmax results).
    I32,
    /// 8-bit blocks: `{f16 d; i8 q[32]}`, 34 bytes, `x = d * q`.
    #[serde(rename = "q8_0")]
    Q8_0,
    /// 4-bit blocks: `{f16 d; u8 q[16]}`, 18 bytes, low nibbles are the first 16 weights.
    #[serde(rename = "q4_0")]
    Q4_0,
}

impl DType {
    /// Every dtype, in catalogue order.
    pub const ALL: [DType; 6] = [
        DType::F32,
        DType::F16,
        DType::Bf16,
        DType::I32,
        DType::Q8_0,
        DType::Q4_0,
    ];

    /// The floating-point dtypes that activations may use.
    pub const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::Bf16];

    /// The dtypes a weight matrix may be stored in.
    pub const WEIGHTS: [DType; 5] = [
        DType::F32,
        DType::F16,
        DType::Bf16,
        DType::Q8_0,
        DType::Q4_0,
    ];

    /// The name users type and reports print (`f32`, `q8_0`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
            DType::I32 => "i32",
            DType::Q8_0 => "q8_0",
            DType::Q4_0 => "q4_0",
        }
    }

    /// Elements per storage block: 32 for the quantized formats, 1 otherwise.
    pub fn block_elems(self) -> usize {
        if self.is_quantized() {
            QUANT_BLOCK
        } else {
            1
        }
    }

    /// Bytes per storage block.
    pub fn block_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 => 2,
            DType::Q8_0 => 2 + QUANT_BLOCK,
            DType::Q4_0 => 2 + QUANT_BLOCK / 2,
        }
    }

    /// True for the block-quantized formats.
    pub fn is_quantized(self) -> bool {
        matches!(self, DType::Q8_0 | DType::Q4_0)
    }

    /// True for f32, f16 and bf16.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::Bf16)
    }

    /// Bytes needed to store `elems` elements laid out contiguously.
    ///
    /// For quantized formats `elems` must be a multiple of the block size;
    /// the result is rounded up to whole blocks otherwise.
    pub fn bytes_for(self, elems: usize) -> usize {
        elems.div_ceil(self.block_elems()) * self.block_bytes()
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = HalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        DType::ALL
            .into_iter()
            .find(|d| d.name() == lower)
            .ok_or_else(|| HalError::InvalidArgument {
                context: "dtype".into(),
                message: format!(
                    "unknown dtype `{s}`; expected one of {}",
                    DType::ALL.map(DType::name).join(", ")
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_follow_gguf() {
        assert_eq!(DType::Q8_0.block_bytes(), 34);
        assert_eq!(DType::Q4_0.block_bytes(), 18);
        assert_eq!(DType::Q8_0.bytes_for(64), 68);
        assert_eq!(DType::F16.bytes_for(3), 6);
    }

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{}\"", d.name()));
        }
        assert!("f64".parse::<DType>().is_err());
    }
}
