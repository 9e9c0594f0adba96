//! quantize: f64 re-statement of ggml's Q8_0/Q4_0 block quantizers.

use glmhal_hal::{DType, HostTensor, Result, QUANT_BLOCK};
use half::f16;

pub(super) fn quantize(x: &HostTensor, out: &mut HostTensor) -> Result<()> {
    let dtype = out.desc.dtype;
    let k = x.desc.last_dim();
    let values = x.to_f64();
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

fn q8_0_block(block: &[f64], bytes: &mut Vec<u8>) {
    let amax = block.iter().map(|v| v.abs()).fold(0.0, f64::max);
    // ggml computes the scale in f32 and rounds the values with it before storing it as f16.
    let d = (amax / 127.0) as f32;
    let id = if d != 0.0 { 1.0 / d as f64 } else { 0.0 };
    bytes.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    bytes.extend(block.iter().map(|v| ((v * id).round() as i8) as u8));
}

fn q4_0_block(block: &[f64], bytes: &mut Vec<u8>) {
    let mut max = 0.0f64;
    for v in block {
        if v.abs() > max.abs() {
            max = *v;
        }
    }
    let d = (max / -8.0) as f32;
    let id = if d != 0.0 { 1.0 / d as f64 } else { 0.0 };
    bytes.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    let q = |v: f64| ((v * id + 8.5).trunc() as i64).clamp(0, 15) as u8;
    let half = QUANT_BLOCK / 2;
    bytes.extend((0..half).map(|j| q(block[j]) | (q(block[j + half]) << 4)));
}
