//! ggml's K-quants (Q4_K, Q5_K, Q6_K), which real GGUF files carry (llama.cpp
//! keeps `output.weight` as Q6_K even in a Q4_0 file). glmhal has no kernels
//! for them: they are decoded here, at load, and re-encoded as the nearest
//! type it has ([`target`]).
//!
//! A super-block holds 256 values. Q4_K: f16 `d`, f16 `dmin`, 12 bytes of
//! 6-bit scales and mins for 8 sub-blocks of 32, 128 bytes of 4-bit values;
//! `y = d·scale·q − dmin·min`. Q5_K adds 32 bytes of fifth bits. Q6_K: 128
//! bytes of low 4 bits, 64 of high 2 bits, 16 int8 scales (sub-blocks of
//! 16), then f16 `d`; `y = d·scale·(q − 32)`.

use glmhal_hal::{DType, HalError, Result};
use half::f16;

use crate::gguf::GgmlType;

/// Values per super-block.
pub const QK_K: usize = 256;

/// The glmhal type a K-quant becomes: Q4_K → Q4_0 (same bits per value);
/// Q5_K and Q6_K → Q8_0 (more bits, so nothing they hold is lost twice).
pub fn target(ty: GgmlType) -> Option<DType> {
    match ty {
        GgmlType::Q4K => Some(DType::Q4_0),
        GgmlType::Q5K | GgmlType::Q6K => Some(DType::Q8_0),
        _ => None,
    }
}

fn half_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Scale and min of sub-block `j` from the 12 packed 6-bit pairs.
fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn q4_k(block: &[u8], y: &mut [f32]) {
    let (d, dmin) = (half_at(block, 0), half_at(block, 2));
    let scales = &block[4..16];
    let qs = &block[16..144];
    for (chunk, j) in (0..QK_K).step_by(64).enumerate() {
        let q = &qs[32 * chunk..32 * chunk + 32];
        let (s1, m1) = scale_min(2 * chunk, scales);
        let (s2, m2) = scale_min(2 * chunk + 1, scales);
        let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            y[j + l] = d1 * (q[l] & 0xF) as f32 - m1;
            y[j + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

fn q5_k(block: &[u8], y: &mut [f32]) {
    let (d, dmin) = (half_at(block, 0), half_at(block, 2));
    let scales = &block[4..16];
    let qh = &block[16..48];
    let qs = &block[48..176];
    for (chunk, j) in (0..QK_K).step_by(64).enumerate() {
        let ql = &qs[32 * chunk..32 * chunk + 32];
        let (u1, u2) = (1u8 << (2 * chunk), 2u8 << (2 * chunk));
        let (s1, m1) = scale_min(2 * chunk, scales);
        let (s2, m2) = scale_min(2 * chunk + 1, scales);
        let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            let high1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let high2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[j + l] = d1 * ((ql[l] & 0xF) + high1) as f32 - m1;
            y[j + 32 + l] = d2 * ((ql[l] >> 4) + high2) as f32 - m2;
        }
    }
}

fn q6_k(block: &[u8], y: &mut [f32]) {
    let d = half_at(block, 208);
    for half in 0..2 {
        let ql = &block[64 * half..64 * half + 64];
        let qh = &block[128 + 32 * half..128 + 32 * half + 32];
        let sc = &block[192 + 8 * half..192 + 8 * half + 8];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q = |low: u8, shift: u32| {
                ((low | (((qh[l] >> shift) & 3) << 4)) as i8 as i32 - 32) as f32
            };
            let scale = |k: usize| d * (sc[is + k] as i8) as f32;
            y[l] = scale(0) * q(ql[l] & 0xF, 0);
            y[l + 32] = scale(2) * q(ql[l + 32] & 0xF, 2);
            y[l + 64] = scale(4) * q(ql[l] >> 4, 4);
            y[l + 96] = scale(6) * q(ql[l + 32] >> 4, 6);
        }
    }
}

/// Decodes one super-block into 256 values.
type DecodeFn = fn(&[u8], &mut [f32]);

/// Decodes `n` values of K-quant type `ty` from `bytes`.
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let (decode, block_bytes): (DecodeFn, usize) = match ty {
        GgmlType::Q4K => (q4_k, 144),
        GgmlType::Q5K => (q5_k, 176),
        GgmlType::Q6K => (q6_k, 210),
        other => {
            return Err(HalError::invalid(
                "gguf",
                format!("{} is not a K-quant", other.name()),
            ))
        }
    };
    if !n.is_multiple_of(QK_K) || bytes.len() != n / QK_K * block_bytes {
        return Err(HalError::invalid(
            "gguf",
            format!(
                "{} data of {} bytes does not hold {n} values",
                ty.name(),
                bytes.len()
            ),
        ));
    }
    let mut out = vec![0.0f32; n];
    for (block, y) in bytes
        .chunks_exact(block_bytes)
        .zip(out.chunks_exact_mut(QK_K))
    {
        decode(block, y);
    }
    Ok(out)
}
