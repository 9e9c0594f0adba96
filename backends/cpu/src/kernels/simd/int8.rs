//! Where int8 activation rows put their values, and the bias the products
//! add to the weights.
//!
//! A row's blocks are in element order, except for Q4_0 products at the
//! AVX-512 level, which read each whole group of [`GROUP_BLOCKS`] blocks
//! transposed: the product loads the group's sixteen blocks of nibble bytes
//! as four vectors of four blocks and transposes their 32-bit words within
//! each 128-bit lane, so that word `l` of vector `t` holds bytes
//! `4t..4t + 4` of block [`SIGMA`]`[l]`. Those bytes hold elements
//! `4t..4t + 4` (low nibbles) and `16 + 4t..16 + 4t + 4` (high nibbles),
//! so the activations of a group are stored as eight vectors of 64 bytes,
//! vector `2t + h` with word `l` holding elements `16h + 4t..16h + 4t + 4`
//! of block `SIGMA[l]`. Eight `vpdpbusd` then sum every block's whole dot
//! product into its own lane. Blocks past the last whole group stay in
//! element order.

use glmhal_hal::{DType, QUANT_BLOCK};

use super::{isa, ActivationBits, Isa};

/// Blocks of one transposed group.
pub(super) const GROUP_BLOCKS: usize = 16;

/// Bytes of one 64-byte vector of a transposed group.
const VECTOR: usize = 64;

/// The block whose bytes 32-bit word `l` of a transposed group's vectors
/// holds: the transpose of a 4 × 4 grid, `4·(l mod 4) + l / 4` (its own
/// inverse).
pub(super) const SIGMA: [usize; GROUP_BLOCKS] =
    [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];

/// Whether int8 rows for products with `dtype` weights hold their whole
/// groups transposed at the current [`isa`].
fn transposed(dtype: DType) -> bool {
    dtype == DType::Q4_0 && isa() == Isa::Avx512
}

/// Where element `e` of block `b` lies in an int8 row of `blocks` blocks
/// arranged for `dtype` weights (in element order: `32b + e`).
pub(super) fn position(dtype: DType, b: usize, e: usize, blocks: usize) -> usize {
    let whole = blocks - blocks % GROUP_BLOCKS;
    if !transposed(dtype) || b >= whole {
        return b * QUANT_BLOCK + e;
    }
    let (group, block) = (b / GROUP_BLOCKS, b % GROUP_BLOCKS);
    // SIGMA is its own inverse: block `block` sits in word SIGMA[block].
    let word = SIGMA[block];
    let (h, t, j) = (e / 16, (e % 16) / 4, e % 4);
    group * GROUP_BLOCKS * QUANT_BLOCK + (2 * t + h) * VECTOR + 4 * word + j
}

/// Puts a freshly quantized int8 row (element order) in the order the
/// product with `dtype` weights reads.
pub(super) fn arrange(dtype: DType, bytes: &mut [i8]) {
    if !transposed(dtype) {
        return;
    }
    let blocks = bytes.len() / QUANT_BLOCK;
    let mut plain = [0i8; GROUP_BLOCKS * QUANT_BLOCK];
    for (g, group) in bytes
        .chunks_exact_mut(GROUP_BLOCKS * QUANT_BLOCK)
        .enumerate()
    {
        plain.copy_from_slice(group);
        for (i, v) in plain.iter().enumerate() {
            let (b, e) = (g * GROUP_BLOCKS + i / QUANT_BLOCK, i % QUANT_BLOCK);
            group[position(dtype, b, e, blocks) - g * GROUP_BLOCKS * QUANT_BLOCK] = *v;
        }
    }
}

/// The bias `c` the product for `dtype` weights and `bits` activations adds
/// to every weight to multiply it as an unsigned byte (the rows carry
/// `−c·Σq` to take it back out): 8 for Q4_0, whose nibbles are stored with
/// it; 128 for Q8_0 with int8 activations at the AVX-512 level (`vpdpbusd`
/// multiplies unsigned by signed bytes); otherwise 0.
pub(super) fn weight_bias(dtype: DType, bits: ActivationBits) -> f32 {
    match (dtype, bits) {
        (DType::Q4_0, _) => 8.0,
        (DType::Q8_0, ActivationBits::Int8) if isa() == Isa::Avx512 => 128.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_is_its_own_inverse() {
        for (l, b) in SIGMA.iter().enumerate() {
            assert_eq!(SIGMA[*b], l);
        }
    }

    #[test]
    fn positions_hold_every_element_once() {
        for dtype in [DType::Q8_0, DType::Q4_0] {
            for blocks in [1usize, 3, 16, 17, 35] {
                let n = blocks * QUANT_BLOCK;
                // Every element tagged with its index, then arranged.
                let mut row: Vec<i8> = (0..n).map(|i| (i % 127) as i8).collect();
                arrange(dtype, &mut row);
                let mut seen = vec![false; n];
                for b in 0..blocks {
                    for e in 0..QUANT_BLOCK {
                        let at = position(dtype, b, e, blocks);
                        let want = b * QUANT_BLOCK + e;
                        assert_eq!(row[at], (want % 127) as i8, "{dtype} {blocks}: b{b} e{e}");
                        assert!(!seen[at]);
                        seen[at] = true;
                    }
                }
                assert!(seen.iter().all(|s| *s));
            }
        }
    }
}
