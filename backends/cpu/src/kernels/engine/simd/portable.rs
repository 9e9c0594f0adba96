//! The portable paths: weights read one element at a time and the
//! quantized products in plain integer arithmetic, for CPUs without AVX2 and
//! as the definition the vector paths are tested against.

use glmhal_hal::{quant::block_scale, DType, QUANT_BLOCK};

use super::QuantizedRow;

/// Element `i` of a float weight row (f32, f16 or bf16).
pub(super) fn weight(dtype: DType, w: &[u8], i: usize) -> f32 {
    match dtype {
        DType::F32 => f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]),
        DType::F16 => half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32(),
        _ => f32::from_bits((u16::from_le_bytes([w[2 * i], w[2 * i + 1]]) as u32) << 16),
    }
}

/// One weight row of [`super::dot_rows_quantized`] in plain Rust (rows in
/// element order, as [`super::int8::arrange`] leaves them at this level).
pub(super) fn dot_row_portable(dtype: DType, w: &[u8], xs: &[&QuantizedRow], out: &mut [f32]) {
    let bb = dtype.block_bytes();
    for (o, x) in out.iter_mut().zip(xs) {
        // Element e of block b, whichever precision the row holds.
        let value = |b: usize, e: usize| {
            let at = b * QUANT_BLOCK + e;
            match x.bytes.get(at) {
                Some(v) => *v as i32,
                None => x.values[at] as i32,
            }
        };
        *o = w
            .chunks_exact(bb)
            .zip(&x.scales)
            .enumerate()
            .map(|(b, (block, s))| {
                let mut sum = 0i32;
                if dtype == DType::Q8_0 {
                    for (e, a) in block[2..].iter().enumerate() {
                        sum += (*a as i8 as i32) * value(b, e);
                    }
                } else {
                    for (e, q) in block[2..].iter().enumerate() {
                        sum += ((q & 0x0f) as i32 - 8) * value(b, e);
                        sum += ((q >> 4) as i32 - 8) * value(b, e + 16);
                    }
                }
                block_scale(block) * s * sum as f32
            })
            .sum();
    }
}
