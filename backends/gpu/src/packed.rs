//! The packed layout of Q8_0 and Q4_0 weights that `prepare_weight` stores
//! (`DT_Q8_0R`/`DT_Q4_0R` in `compat.h`): per row, the quants (Q8_0: one
//! byte each; Q4_0: each block's 16 bytes of nibbles in ggml's order), then
//! the row's f16 scales, padded to 16 bytes. Quants of a row are contiguous
//! and 16-byte aligned, so the decode kernels load 16 bytes per lane.

use glmhal_hal::{DType, HalError, Result, TensorDesc};

/// Bytes of one packed row of `k` values (`packed_row_bytes` in `compat.h`).
pub fn row_bytes(dtype: DType, k: usize) -> usize {
    (quant_bytes(dtype, k) + k / 16).div_ceil(16) * 16
}

/// Bytes of the quants of one row.
fn quant_bytes(dtype: DType, k: usize) -> usize {
    if dtype == DType::Q8_0 {
        k
    } else {
        k / 2
    }
}

/// Whether a weight of `desc` is stored packed: a whole, contiguous
/// Q8_0/Q4_0 matrix.
pub fn packs(desc: &TensorDesc) -> bool {
    desc.dtype.is_quantized() && desc.rank() == 2 && desc.offset == 0 && desc.is_contiguous()
}

/// `bytes` (ggml blocks laid out as `desc`, which [`packs`] accepts) in the packed layout.
pub fn pack(desc: &TensorDesc, bytes: &[u8]) -> Result<Vec<u8>> {
    let (dtype, n, k) = (desc.dtype, desc.shape[0], desc.shape[1]);
    let block = dtype.block_bytes();
    let blocks = k / 32;
    if bytes.len() != n * blocks * block {
        return Err(HalError::invalid(
            "prepare_weight",
            format!(
                "{} bytes for a {dtype} weight of shape {:?} ({} expected)",
                bytes.len(),
                desc.shape,
                n * blocks * block
            ),
        ));
    }
    let (row, quants) = (row_bytes(dtype, k), quant_bytes(dtype, k));
    let per_block = block - 2;
    let mut out = vec![0u8; n * row];
    for (r, src) in bytes.chunks_exact(blocks * block).enumerate() {
        let dst = &mut out[r * row..(r + 1) * row];
        for (b, blk) in src.chunks_exact(block).enumerate() {
            dst[b * per_block..(b + 1) * per_block].copy_from_slice(&blk[2..]);
            dst[quants + 2 * b..quants + 2 * b + 2].copy_from_slice(&blk[..2]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_sixteen_bytes() {
        assert_eq!(row_bytes(DType::Q8_0, 32), 48);
        assert_eq!(row_bytes(DType::Q8_0, 256), 272);
        assert_eq!(row_bytes(DType::Q4_0, 32), 32);
        assert_eq!(row_bytes(DType::Q4_0, 4096), 2304);
    }

    #[test]
    fn quants_come_first_then_the_scales() {
        let desc = TensorDesc::contiguous(DType::Q8_0, &[1, 64]);
        let mut ggml = Vec::new();
        for b in 0..2u8 {
            ggml.extend([0x10 + b, 0x3c]);
            ggml.extend((0..32).map(|i| 32 * b + i));
        }
        let p = pack(&desc, &ggml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.len(), 80);
        assert_eq!(&p[..64], &(0..64).collect::<Vec<u8>>()[..]);
        assert_eq!(&p[64..68], &[0x10, 0x3c, 0x11, 0x3c]);
        assert!(p[68..].iter().all(|b| *b == 0));
        assert!(pack(&desc, &ggml[1..]).is_err());
    }
}
