//! quantize: ggml's Q8_0/Q4_0 block quantizers, restated plainly.
//!
//! The format is defined by ggml's f32 arithmetic (`x * (1/d)`, then round or
//! truncate), so this follows it in f32: the one place where the reference
//! does not widen to f64, because widening would move values across a
//! rounding boundary that every implementation of the format agrees on.

use glmhal_hal::{DType, HostTensor, Result, QUANT_BLOCK};
use half::f16;

pub(super) fn quantize(x: &HostTensor, out: &mut HostTensor) -> Result<()> {
    let dtype = out.desc.dtype;
    let k = x.desc.last_dim();
    let values = x.to_f32();
    for (r, row) in values.chunks_exact(k).enumerate() {
        let mut bytes = Vec::with_capacity(dtype.bytes_for(k));
        for block in row.chunks_exact(QUANT_BLOCK) {
            match dtype {
                DType::Q8_0 => q8_0_block(block, &mut bytes),
                _ => q4_0_block(block, &mut bytes),
            }
        }
        out.write_row_bytes(r, &bytes)?;
    }
    Ok(())
}

fn q8_0_block(block: &[f32], bytes: &mut Vec<u8>) {
    let mut amax = 0.0f32;
    for v in block {
        if v.abs() > amax {
            amax = v.abs();
        }
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    bytes.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    for v in block {
        // roundf: half away from zero.
        let q = (v * id).round() as i32;
        bytes.push(q.clamp(-128, 127) as i8 as u8);
    }
}

fn q4_0_block(block: &[f32], bytes: &mut Vec<u8>) {
    let mut max = 0.0f32;
    for v in block {
        if v.abs() > max.abs() {
            max = *v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    bytes.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    // (int8_t)(x + 8.5f) truncates toward zero, then clamps to 15.
    let q = |v: f32| ((v * id + 8.5).trunc() as i32).clamp(0, 15) as u8;
    let half = QUANT_BLOCK / 2;
    for j in 0..half {
        bytes.push(q(block[j]) | (q(block[j + half]) << 4));
    }
}
