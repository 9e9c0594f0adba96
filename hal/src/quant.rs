//! Element encodings: f16/bf16 conversion and the Q8_0/Q4_0 block codecs.
//!
//! These follow ggml's reference quantizers bit for bit (`quantize_row_q8_0_ref`,
//! `quantize_row_q4_0_ref`), so blocks written here read back identically in
//! llama.cpp and vice versa.

use half::{bf16, f16};

use crate::dtype::{DType, QUANT_BLOCK};
use crate::error::{HalError, Result};

/// Reads element `i` of a packed f32/f16/bf16/i32 array as f32.
///
/// # Panics
/// Panics if `bytes` is too short or `dtype` is quantized; callers index
/// within validated views.
#[inline]
pub fn read_scalar(dtype: DType, bytes: &[u8], i: usize) -> f32 {
    match dtype {
        DType::F32 => f32::from_le_bytes(array4(bytes, i * 4)),
        DType::I32 => i32::from_le_bytes(array4(bytes, i * 4)) as f32,
        DType::F16 => f16::from_le_bytes([bytes[i * 2], bytes[i * 2 + 1]]).to_f32(),
        DType::Bf16 => bf16::from_le_bytes([bytes[i * 2], bytes[i * 2 + 1]]).to_f32(),
        DType::Q8_0 | DType::Q4_0 => panic!("read_scalar on quantized dtype {dtype}"),
    }
}

/// Writes `v` as element `i` of a packed f32/f16/bf16/i32 array, rounding to
/// nearest even (i32 rounds half away from zero and saturates).
#[inline]
pub fn write_scalar(dtype: DType, bytes: &mut [u8], i: usize, v: f32) {
    match dtype {
        DType::F32 => bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes()),
        DType::I32 => bytes[i * 4..i * 4 + 4].copy_from_slice(&(v.round() as i32).to_le_bytes()),
        DType::F16 => bytes[i * 2..i * 2 + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes()),
        DType::Bf16 => bytes[i * 2..i * 2 + 2].copy_from_slice(&bf16::from_f32(v).to_le_bytes()),
        DType::Q8_0 | DType::Q4_0 => panic!("write_scalar on quantized dtype {dtype}"),
    }
}

#[inline]
fn array4(bytes: &[u8], at: usize) -> [u8; 4] {
    [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]
}

/// Rounds an f32 through `dtype` and back, as storing it would.
#[inline]
pub fn round_to(dtype: DType, v: f32) -> f32 {
    match dtype {
        DType::F16 => f16::from_f32(v).to_f32(),
        DType::Bf16 => bf16::from_f32(v).to_f32(),
        _ => v,
    }
}

/// The f16 scale of a quantized block.
#[inline]
pub fn block_scale(block: &[u8]) -> f32 {
    f16::from_le_bytes([block[0], block[1]]).to_f32()
}

/// Decodes whole Q8_0 or Q4_0 blocks from `src` into `dst` (`dst.len()` a
/// multiple of 32, `src` at least that many blocks).
pub fn dequantize(dtype: DType, src: &[u8], dst: &mut [f32]) {
    let bb = dtype.block_bytes();
    for (block, out) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(QUANT_BLOCK)) {
        let d = block_scale(block);
        match dtype {
            DType::Q8_0 => {
                for (o, q) in out.iter_mut().zip(&block[2..]) {
                    *o = d * (*q as i8) as f32;
                }
            }
            DType::Q4_0 => {
                let (lo, hi) = out.split_at_mut(QUANT_BLOCK / 2);
                for (j, q) in block[2..].iter().enumerate() {
                    lo[j] = d * ((q & 0x0f) as i32 - 8) as f32;
                    hi[j] = d * ((q >> 4) as i32 - 8) as f32;
                }
            }
            _ => unreachable!("dequantize on {dtype}"),
        }
    }
}

/// Encodes `src` (a multiple of 32 values) into Q8_0 or Q4_0 blocks in `dst`.
pub fn quantize(dtype: DType, src: &[f32], dst: &mut [u8]) {
    let bb = dtype.block_bytes();
    for (vals, block) in src.chunks_exact(QUANT_BLOCK).zip(dst.chunks_exact_mut(bb)) {
        match dtype {
            DType::Q8_0 => quantize_block_q8_0(vals, block),
            DType::Q4_0 => quantize_block_q4_0(vals, block),
            _ => unreachable!("quantize to {dtype}"),
        }
    }
}

fn quantize_block_q8_0(vals: &[f32], block: &mut [u8]) {
    let amax = vals.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    block[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (q, v) in block[2..].iter_mut().zip(vals) {
        *q = ((v * id).round() as i8) as u8;
    }
}

fn quantize_block_q4_0(vals: &[f32], block: &mut [u8]) {
    // ggml keeps the sign of the largest-magnitude value so that it maps to -8 exactly.
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in vals {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    block[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    let half = QUANT_BLOCK / 2;
    for j in 0..half {
        let lo = ((vals[j] * id + 8.5) as u8).min(15);
        let hi = ((vals[j + half] * id + 8.5) as u8).min(15);
        block[2 + j] = lo | (hi << 4);
    }
}

/// Decodes packed f32/f16/bf16/i32 values (`dst.len()` of them) from `src`,
/// with the SIMD conversions of the `half` crate where the bytes are aligned.
pub fn decode_packed(dtype: DType, src: &[u8], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    let n = dst.len();
    match dtype {
        DType::F32 => {
            for (o, b) in dst.iter_mut().zip(src[..4 * n].chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        DType::F16 | DType::Bf16 if cfg!(target_endian = "little") => {
            // SAFETY: f16 and bf16 are plain 16-bit values; every bit pattern is valid.
            let (pre, mid, _) = unsafe { src[..2 * n].align_to::<u16>() };
            if !pre.is_empty() {
                for (i, o) in dst.iter_mut().enumerate() {
                    *o = read_scalar(dtype, src, i);
                }
                return;
            }
            if dtype == DType::F16 {
                // SAFETY: f16 is repr(transparent) over u16.
                let halves: &[f16] =
                    unsafe { std::slice::from_raw_parts(mid.as_ptr().cast(), mid.len()) };
                halves.convert_to_f32_slice(dst);
            } else {
                // SAFETY: bf16 is repr(transparent) over u16.
                let halves: &[bf16] =
                    unsafe { std::slice::from_raw_parts(mid.as_ptr().cast(), mid.len()) };
                halves.convert_to_f32_slice(dst);
            }
        }
        _ if dtype.is_quantized() => dequantize(dtype, src, dst),
        _ => {
            for (i, o) in dst.iter_mut().enumerate() {
                *o = read_scalar(dtype, src, i);
            }
        }
    }
}

/// Converts packed values of any dtype to f32 (dequantizing blocks).
pub fn to_f32(dtype: DType, src: &[u8], n: usize) -> Result<Vec<f32>> {
    if src.len() < dtype.bytes_for(n) {
        return Err(HalError::Layout(format!(
            "{n} {dtype} values need {} bytes, got {}",
            dtype.bytes_for(n),
            src.len()
        )));
    }
    let mut out = vec![0.0f32; n];
    if dtype.is_quantized() {
        if !n.is_multiple_of(QUANT_BLOCK) {
            return Err(HalError::Layout(format!(
                "{dtype} needs a multiple of {QUANT_BLOCK} values, got {n}"
            )));
        }
        dequantize(dtype, src, &mut out);
    } else {
        for (i, o) in out.iter_mut().enumerate() {
            *o = read_scalar(dtype, src, i);
        }
    }
    Ok(out)
}

/// Converts f32 values to packed bytes of any dtype (quantizing blocks).
pub fn from_f32(dtype: DType, src: &[f32]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; dtype.bytes_for(src.len())];
    if dtype.is_quantized() {
        if !src.len().is_multiple_of(QUANT_BLOCK) {
            return Err(HalError::Layout(format!(
                "{dtype} needs a multiple of {QUANT_BLOCK} values, got {}",
                src.len()
            )));
        }
        quantize(dtype, src, &mut out);
    } else {
        for (i, v) in src.iter().enumerate() {
            write_scalar(dtype, &mut out, i, *v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
            .collect()
    }

    fn rmse(a: &[f32], b: &[f32]) -> f32 {
        let s: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        (s / a.len() as f32).sqrt()
    }

    #[test]
    fn q8_0_round_trip_is_tight() {
        let x = ramp(256);
        let q = from_f32(DType::Q8_0, &x).unwrap();
        assert_eq!(q.len(), 8 * 34);
        let y = to_f32(DType::Q8_0, &q, 256).unwrap();
        assert!(rmse(&x, &y) < 0.002 * 2.0, "rmse {}", rmse(&x, &y));
        // ggml: the largest magnitude maps to +-127.
        let block = &q[..34];
        assert!(block[2..]
            .iter()
            .any(|&b| b as i8 == 127 || b as i8 == -127));
    }

    #[test]
    fn q4_0_round_trip_and_layout() {
        let x = ramp(128);
        let q = from_f32(DType::Q4_0, &x).unwrap();
        assert_eq!(q.len(), 4 * 18);
        let y = to_f32(DType::Q4_0, &q, 128).unwrap();
        assert!(rmse(&x, &y) < 0.1, "rmse {}", rmse(&x, &y));
        // Low nibbles hold the first 16 weights: a block with only x[0] set.
        let mut one = [0.0f32; 32];
        one[0] = -1.0;
        one[16] = 0.5;
        let b = from_f32(DType::Q4_0, &one).unwrap();
        assert_eq!(block_scale(&b), 0.125);
        assert_eq!(b[2] & 0x0f, 0); // -1 / 0.125 + 8 = 0
        assert_eq!(b[2] >> 4, 12); // 0.5 / 0.125 + 8 = 12
        let back = to_f32(DType::Q4_0, &b, 32).unwrap();
        assert_eq!(back[0], -1.0);
        assert_eq!(back[16], 0.5);
        assert_eq!(back[1], 0.0);
    }

    #[test]
    fn zero_blocks_stay_zero() {
        for dt in [DType::Q8_0, DType::Q4_0] {
            let b = from_f32(dt, &[0.0; 32]).unwrap();
            assert_eq!(to_f32(dt, &b, 32).unwrap(), vec![0.0; 32]);
        }
    }

    #[test]
    fn floats_round_to_nearest_even() {
        let x = [1.0f32, 1.0 + 1.0 / 4096.0, 70000.0, -3.3];
        let h = from_f32(DType::F16, &x).unwrap();
        let back = to_f32(DType::F16, &h, 4).unwrap();
        assert_eq!(back[0], 1.0);
        assert_eq!(back[1], 1.0); // tie goes to even
        assert!(back[2].is_infinite());
        let b = from_f32(DType::Bf16, &x).unwrap();
        assert_eq!(to_f32(DType::Bf16, &b, 4).unwrap()[2], 70144.0);
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert!(from_f32(DType::Q8_0, &[0.0; 31]).is_err());
        assert!(to_f32(DType::Q4_0, &[0u8; 17], 32).is_err());
        assert!(to_f32(DType::F32, &[0u8; 7], 2).is_err());
    }
}
