//! The split layout `prepare_weight` stores whole Q8_0/Q4_0 matrices in:
//! every row's values as int8 (Q4_0's nibbles with their + 8 removed, in
//! element order), then, from a 512-byte boundary, every row's f16 block
//! scales. This is what aclnnWeightQuantBatchMatmulV2 reads (an int8 weight
//! and a separate scale tensor), so a product reads the weight in place
//! instead of copying or dequantizing it at each call.

use glmhal_hal::{DType, HalError, Result, TensorDesc, QUANT_BLOCK};

/// ACL's allocation alignment, kept for the scales.
const ALIGN: usize = 512;

/// Whether a weight of `desc` is stored split: a whole, contiguous Q8_0 or
/// Q4_0 matrix.
pub fn prepares(desc: &TensorDesc) -> bool {
    desc.dtype.is_quantized() && desc.rank() == 2 && desc.offset == 0 && desc.is_contiguous()
}

/// Byte offset of the scales of an `[n, k]` weight.
pub fn scales_offset(n: usize, k: usize) -> usize {
    (n * k).div_ceil(ALIGN) * ALIGN
}

/// Bytes of an `[n, k]` weight in the split layout.
pub fn bytes(n: usize, k: usize) -> usize {
    scales_offset(n, k) + n * (k / QUANT_BLOCK) * 2
}

/// GGUF blocks laid out as `desc` (which [`prepares`] accepts) in the split layout.
pub fn split(desc: &TensorDesc, ggml: &[u8]) -> Result<Vec<u8>> {
    let (dtype, n, k) = (desc.dtype, desc.shape[0], desc.shape[1]);
    let block = dtype.block_bytes();
    let blocks = n * (k / QUANT_BLOCK);
    if ggml.len() != blocks * block {
        return Err(HalError::invalid(
            "prepare_weight",
            format!(
                "{} bytes for a {dtype} weight of shape {:?} ({} expected)",
                ggml.len(),
                desc.shape,
                blocks * block
            ),
        ));
    }
    let mut out = vec![0u8; bytes(n, k)];
    let (values, scales) = out.split_at_mut(scales_offset(n, k));
    for (b, blk) in ggml.chunks_exact(block).enumerate() {
        scales[2 * b..2 * b + 2].copy_from_slice(&blk[..2]);
        let dst = &mut values[b * QUANT_BLOCK..(b + 1) * QUANT_BLOCK];
        if dtype == DType::Q8_0 {
            dst.copy_from_slice(&blk[2..]);
        } else {
            // Byte j holds element j (low nibble) and j + 16 (high), each + 8.
            for (j, byte) in blk[2..].iter().enumerate() {
                dst[j] = ((byte & 0x0F) as i8 - 8) as u8;
                dst[j + 16] = ((byte >> 4) as i8 - 8) as u8;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_first_then_the_aligned_scales() {
        let desc = TensorDesc::contiguous(DType::Q8_0, &[1, 64]);
        let mut ggml = Vec::new();
        for b in 0..2u8 {
            ggml.extend([0x10 + b, 0x3c]);
            ggml.extend((0..32).map(|i| 32 * b + i));
        }
        let s = split(&desc, &ggml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.len(), 512 + 4);
        assert_eq!(&s[..64], &(0..64).collect::<Vec<u8>>()[..]);
        assert_eq!(&s[512..], &[0x10, 0x3c, 0x11, 0x3c]);
    }

    #[test]
    fn q4_0_nibbles_become_centred_int8_in_element_order() {
        let desc = TensorDesc::contiguous(DType::Q4_0, &[1, 32]);
        let mut ggml = vec![0x00, 0x3c];
        // Element j = 0 (stored 8) in the low nibble, j + 16 = 7 (stored 15) high.
        ggml.extend([0xF8u8; 16]);
        let s = split(&desc, &ggml).unwrap_or_else(|e| panic!("{e}"));
        assert!(s[..16].iter().all(|v| *v == 0));
        assert!(s[16..32].iter().all(|v| *v as i8 == 7));
        assert!(split(&desc, &ggml[..10]).is_err());
    }
}
