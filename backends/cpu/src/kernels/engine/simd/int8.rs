//! Where int8 activation rows put their values, and the bias the products
//! add to the weights.
//!
//! A row's blocks are in element order, except at the AVX-512 level:
//!
//! - A row multiplied alone (one activation row in its tile, as in decode)
//!   with Q8_0 or Q4_0 weights is laid out in step with the weight rows'
//!   bytes ([`WeightLayout`]), so that the product multiplies 64 bytes of
//!   weights as loaded, scale bytes and all, with the 64 activation bytes
//!   at the same offset: a Q8_0 row has one plane of bytes, a Q4_0 row two
//!   (the elements of the weights' low nibbles, then those of the high
//!   nibbles), each as long as a weight row (rounded up to 64 bytes) with
//!   the value that multiplies weight byte `i` at byte `i` and zeros under
//!   the scales. A block's scale is two bytes and the bytes between scales
//!   even, so every 32-bit lane of such a load holds values of one block
//!   only: `vpdpbusd` then sums each lane within one block, and a lane's
//!   sum is scaled by its block's scales.
//! - Rows multiplied several at a time with Q4_0 weights hold each whole
//!   group of [`GROUP_BLOCKS`] blocks transposed: the product loads the
//!   group's sixteen blocks of nibble bytes as four vectors of four blocks
//!   and transposes their 32-bit words within each 128-bit lane, so that
//!   word `l` of vector `t` holds bytes `4t..4t + 4` of block
//!   [`SIGMA`]`[l]`. Those bytes hold elements `4t..4t + 4` (low nibbles)
//!   and `16 + 4t..16 + 4t + 4` (high nibbles), so the activations of a
//!   group are stored as eight vectors of 64 bytes, vector `2t + h` with
//!   word `l` holding elements `16h + 4t..16h + 4t + 4` of block
//!   `SIGMA[l]`. Eight `vpdpbusd` then sum every block's whole dot product
//!   into its own lane. Blocks past the last whole group stay in element
//!   order.
//!
//! The weight layout spends a conversion and an FMA per 64 weight bytes
//! and activation row, the transposed one per sixteen blocks and row, but
//! the transposed one spends shuffles per sixteen blocks of weights: the
//! first is the cheaper for one row, the second for several.

use glmhal_hal::{DType, QUANT_BLOCK};

use super::{isa, ActivationBits, Isa};

/// Blocks of one transposed group.
pub(crate) const GROUP_BLOCKS: usize = 16;

/// Bytes of one vector: of a transposed group, or of weights.
pub(crate) const VECTOR: usize = 64;

/// The block whose bytes 32-bit word `l` of a transposed group's vectors
/// holds: the transpose of a 4 × 4 grid, `4·(l mod 4) + l / 4` (its own
/// inverse).
pub(crate) const SIGMA: [usize; GROUP_BLOCKS] =
    [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];

/// Whether int8 rows for products with `dtype` weights hold their whole
/// groups transposed at the current [`isa`].
fn transposed(dtype: DType) -> bool {
    dtype == DType::Q4_0 && isa() == Isa::Avx512
}

/// Where element `e` of block `b` lies in an int8 row of `blocks` blocks
/// arranged for `dtype` weights (in element order: `32b + e`).
pub(crate) fn position(dtype: DType, b: usize, e: usize, blocks: usize) -> usize {
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
pub(crate) fn arrange(dtype: DType, bytes: &mut [i8]) {
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

/// Bytes of a 32-bit lane.
const LANE: usize = 4;

/// Whether an int8 row multiplied alone with `dtype` weights is laid out
/// in step with the weight bytes ([`WeightLayout`]) at the current [`isa`].
pub(crate) fn in_weight_layout(dtype: DType) -> bool {
    matches!(dtype, DType::Q8_0 | DType::Q4_0) && isa() == Isa::Avx512
}

/// The layout of an int8 activation row in step with a row of Q8_0 or
/// Q4_0 weights (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WeightLayout {
    /// Bytes per weight block: 34 (Q8_0) or 18 (Q4_0).
    pub block_bytes: usize,
    /// Bytes of one weight row.
    pub row_bytes: usize,
    /// Planes of activation bytes: 1 (Q8_0) or 2 (Q4_0).
    pub planes: usize,
    /// Bytes of each plane: the row's, rounded up to whole vectors.
    pub plane_bytes: usize,
}

impl WeightLayout {
    /// The layout for rows of `blocks` blocks of `dtype` (Q8_0 or Q4_0).
    pub fn new(dtype: DType, blocks: usize) -> Self {
        let block_bytes = dtype.block_bytes();
        let row_bytes = block_bytes * blocks;
        WeightLayout {
            block_bytes,
            row_bytes,
            planes: if dtype == DType::Q4_0 { 2 } else { 1 },
            plane_bytes: row_bytes.next_multiple_of(VECTOR),
        }
    }

    /// 32-bit lanes of a plane (one per four bytes).
    pub fn lanes(&self) -> usize {
        self.plane_bytes / LANE
    }

    /// Elements of a block each plane holds: 32 (Q8_0) or 16 (Q4_0).
    fn per_plane(&self) -> usize {
        QUANT_BLOCK / self.planes
    }

    /// Where element `e` of block `b` lies in the row: its plane's bytes
    /// are followed by the next plane's.
    pub fn position(&self, b: usize, e: usize) -> usize {
        let (plane, i) = (e / self.per_plane(), e % self.per_plane());
        plane * self.plane_bytes + self.block_bytes * b + 2 + i
    }

    /// The lanes holding values of block `b`: its first value byte's lane
    /// to its last one's.
    fn lanes_of(&self, b: usize) -> std::ops::RangeInclusive<usize> {
        let first = self.block_bytes * b + 2;
        first / LANE..=(first + self.per_plane() - 1) / LANE
    }

    /// Lays out an int8 row quantized in element order (`plain`, with one
    /// `scale` per block): its values in `bytes`, and per lane the scale
    /// of the block whose values it holds (0 for lanes past the row) in
    /// `lane_scales` and `−c·Σq` over its values in `lane_offsets`, `c`
    /// being the bias the product adds to the weights.
    pub fn lay_out(
        &self,
        plain: &[i8],
        scales: &[f32],
        bias: i32,
        bytes: &mut Vec<i8>,
        lane_offsets: &mut Vec<i32>,
        lane_scales: &mut Vec<f32>,
    ) {
        let per_plane = self.per_plane();
        bytes.clear();
        bytes.resize(self.planes * self.plane_bytes, 0);
        lane_offsets.clear();
        lane_offsets.resize(self.lanes(), 0);
        lane_scales.clear();
        lane_scales.resize(self.lanes(), 0.0);
        for (b, (block, scale)) in plain.chunks_exact(QUANT_BLOCK).zip(scales).enumerate() {
            let first = self.position(b, 0);
            for (plane, values) in block.chunks_exact(per_plane).enumerate() {
                let at = first + plane * self.plane_bytes;
                bytes[at..at + per_plane].copy_from_slice(values);
            }
            lane_scales[self.lanes_of(b)].fill(*scale);
        }
        // Lane by lane over whole planes (zeros under the scales), in
        // straight loops the compiler vectorizes: a quantization per
        // product, on one thread while the others wait.
        for plane in bytes.chunks_exact(self.plane_bytes) {
            for (offset, lane) in lane_offsets.iter_mut().zip(plane.chunks_exact(LANE)) {
                let sum: i32 = lane.iter().map(|v| *v as i32).sum();
                *offset -= bias * sum;
            }
        }
    }
}

/// Chunks of [`VECTOR`] bytes after which the lanes of Q4_0 rows meet
/// blocks at the same offsets again: 9 chunks, 32 blocks.
pub(crate) const Q4_0_PERIOD: usize = 9;
/// The same for Q8_0 rows: 17 chunks, 32 blocks.
pub(crate) const Q8_0_PERIOD: usize = 17;

/// For the product in [`WeightLayout`]: per chunk of a row (by its place
/// in the period of `P` chunks), the 16-bit word of the previous and this
/// chunk's 128 weight bytes (`vpermt2w` indices: 0–31 the previous chunk,
/// 32–63 this one) that holds the scale of the block lane `l` belongs to,
/// in entry `l` (entries 16–31 are unused). A lane's block starts at most
/// one block before its chunk, so its scale lies in one of the two.
pub(crate) const fn scale_words<const P: usize>(block_bytes: usize) -> [[u16; 32]; P] {
    let mut table = [[0u16; 32]; P];
    let mut chunk = 0;
    while chunk < P {
        let mut lane = 0;
        while lane < VECTOR / LANE {
            let byte = VECTOR * chunk + LANE * lane;
            // The lane's last byte lies in its block's values or its scale
            // follows it; its first byte in the block's values or its scale.
            let block = (byte + LANE - 1 - 2) / block_bytes;
            // Bytes from the previous chunk's start; words are two bytes.
            table[chunk][lane] = ((block * block_bytes + VECTOR - VECTOR * chunk) / 2) as u16;
            lane += 1;
        }
        chunk += 1;
    }
    table
}

/// The bias `c` the product for `dtype` weights and `bits` activations adds
/// to every weight to multiply it as an unsigned byte (the rows carry
/// `−c·Σq` to take it back out): 8 for Q4_0, whose nibbles are stored with
/// it; 128 for Q8_0 with int8 activations at the AVX-512 level (`vpdpbusd`
/// multiplies unsigned by signed bytes); otherwise 0.
pub(crate) fn weight_bias(dtype: DType, bits: ActivationBits) -> f32 {
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

    /// The block whose values byte `i` of a plane holds, if any.
    fn block_at(layout: &WeightLayout, i: usize) -> Option<usize> {
        let bb = layout.block_bytes;
        (i < layout.row_bytes && i % bb >= 2).then_some(i / bb)
    }

    #[test]
    fn every_lane_holds_values_of_one_block() {
        for dtype in [DType::Q8_0, DType::Q4_0] {
            let layout = WeightLayout::new(dtype, 67);
            for lane in 0..layout.lanes() {
                let blocks: Vec<usize> = (LANE * lane..LANE * lane + LANE)
                    .filter_map(|i| block_at(&layout, i))
                    .collect();
                assert!(
                    blocks.windows(2).all(|w| w[0] == w[1]),
                    "{dtype} lane {lane}"
                );
                let listed: Vec<usize> = (0..67)
                    .filter(|b| layout.lanes_of(*b).contains(&lane))
                    .collect();
                assert_eq!(
                    listed,
                    blocks.first().copied().into_iter().collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn rows_hold_every_element_once_with_lane_sums_and_scales() {
        for (dtype, bias) in [(DType::Q8_0, 128), (DType::Q4_0, 8)] {
            for blocks in [1usize, 2, 3, 16, 17, 35] {
                let layout = WeightLayout::new(dtype, blocks);
                let n = blocks * QUANT_BLOCK;
                let plain: Vec<i8> = (0..n).map(|i| (i % 251) as i8).collect();
                let scales: Vec<f32> = (0..blocks).map(|b| 1.0 + b as f32).collect();
                let (mut bytes, mut offsets, mut lane_scales) =
                    (Vec::new(), Vec::new(), Vec::new());
                layout.lay_out(
                    &plain,
                    &scales,
                    bias,
                    &mut bytes,
                    &mut offsets,
                    &mut lane_scales,
                );
                assert_eq!(bytes.len(), layout.planes * layout.plane_bytes);
                let mut seen = vec![false; bytes.len()];
                for b in 0..blocks {
                    for e in 0..QUANT_BLOCK {
                        let at = layout.position(b, e);
                        assert_eq!(bytes[at], plain[b * QUANT_BLOCK + e], "{dtype} b{b} e{e}");
                        assert_eq!(block_at(&layout, at % layout.plane_bytes), Some(b));
                        assert!(!seen[at]);
                        seen[at] = true;
                    }
                }
                // Every other byte (scales, padding) is zero.
                assert!(bytes.iter().zip(&seen).all(|(v, s)| *s || *v == 0));
                for lane in 0..layout.lanes() {
                    let block =
                        (LANE * lane..LANE * lane + LANE).find_map(|i| block_at(&layout, i));
                    let sum: i32 = (0..layout.planes)
                        .flat_map(|p| &bytes[p * layout.plane_bytes + LANE * lane..][..LANE])
                        .map(|v| *v as i32)
                        .sum();
                    assert_eq!(offsets[lane], -bias * sum, "{dtype} lane {lane}");
                    assert_eq!(lane_scales[lane], block.map_or(0.0, |b| scales[b]));
                }
            }
        }
    }

    #[test]
    fn scale_words_point_at_each_lanes_block_scale() {
        fn check<const P: usize>(dtype: DType, table: [[u16; 32]; P]) {
            let layout = WeightLayout::new(dtype, 32);
            // The table repeats every P chunks, which hold 32 whole blocks.
            assert_eq!(P * VECTOR, 32 * layout.block_bytes);
            for (chunk, words) in table.iter().enumerate() {
                for (lane, word) in words[..VECTOR / LANE].iter().enumerate() {
                    let byte = VECTOR * chunk + LANE * lane;
                    let block = (byte..byte + LANE)
                        .find_map(|i| block_at(&layout, i))
                        .unwrap();
                    // Word `word` counted from the previous chunk's start.
                    let at = VECTOR * chunk + 2 * *word as usize;
                    assert!(*word < 64, "{dtype} chunk {chunk}");
                    assert_eq!(
                        at - VECTOR,
                        block * layout.block_bytes,
                        "{dtype} c{chunk} l{lane}"
                    );
                }
            }
        }
        check(DType::Q4_0, scale_words::<Q4_0_PERIOD>(18));
        check(DType::Q8_0, scale_words::<Q8_0_PERIOD>(34));
    }
}
