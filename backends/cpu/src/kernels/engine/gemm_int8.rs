//! The prefill product for Q4_0 and Q8_0 weights in 8-bit integers: Q4_0
//! on AVX2 and AVX-512 VNNI, Q8_0 on AVX-512 VNNI, with int8 activations
//! (the default of `GLMHAL_CPU_ACTIVATIONS`; with int16 these products go
//! through the f32 GEMM of [`super::gemm`] and quantize nothing).
//!
//! Quantized weights need not go through f32: the activations are
//! quantized once per product to blocks of 32 signed bytes with an f32
//! scale (`scale = max|x| / 127`, as llama.cpp does for every quantized
//! product; the rounding error, at most half a step of 1/127 of a block's
//! largest value, is a sixteenth of the step of Q4_0's four bits and half
//! that of Q8_0's bytes), and each instruction multiplies unsigned weight
//! bytes by signed activation bytes, with no weight ever converted to f32:
//! Q4_0 nibbles as they are (0..=15, the format's −8 taken out below),
//! Q8_0 bytes offset by 128 (0..=255, likewise).
//!
//! Layout: the depth is cut into groups of sixteen blocks (512 values).
//! Within a group, vector `t` (of eight, 64 bytes each) holds bytes
//! `4t..4t + 4` of each of the sixteen blocks, block `l` in 32-bit lane
//! `l`, for weights and activations alike.
//!
//! With AVX-512 VNNI one `vpdpbusd` per vector multiplies 64 unsigned
//! weight bytes by 64 signed bytes and sums them four by four into the
//! sixteen blocks' lanes, exactly in int32: after the eight vectors of a
//! group, lane `l` holds block `l`'s integer dot product. Its accumulators
//! start at each activation block's `−c·Σq` (`c` = 8 for Q4_0, 128 for
//! Q8_0), which takes the weights' offset out of the sums; one conversion
//! and one FMA with the sixteen blocks' scales (weight × activation) finish
//! a group.
//!
//! AVX2 (Q4_0 only: `maddubs` sums pairs of products in int16, which an
//! offset Q8_0 byte times a signed one can overflow) reads a group as two
//! halves of eight blocks (bytes `32h..32h + 32` of each vector): the eight
//! `maddubs` of a half, summed lane-wise in int16 (no overflow: at most
//! 8·2·15·127 = 30 480) and paired by `madd`, are the eight blocks' dot
//! products, finished as above.
//!
//! Tasks own panels of [`PANEL_ROWS`] weight rows: each packs its panel
//! once (unpacked and transposed into the layout above) and multiplies it
//! with every activation row, [`RM`] weight rows by [`RN`] activation rows
//! at a time.

use glmhal_hal::{DType, TensorDesc, QUANT_BLOCK};
use rayon::prelude::*;

use super::columns::Columns;
use super::simd::{activation_bits, isa, ActivationBits, Isa};
use super::{In, Scratch};

/// Blocks per group (one per 32-bit lane of a 512-bit vector).
const GROUP_BLOCKS: usize = 16;
/// Blocks per half group, as AVX2 reads them (one per 32-bit lane of a 256-bit vector).
const HALF_BLOCKS: usize = GROUP_BLOCKS / 2;
/// Bytes of one vector of a group: four of each block.
const VECTOR: usize = 4 * GROUP_BLOCKS;
/// Values per group.
const GROUP: usize = GROUP_BLOCKS * QUANT_BLOCK;
/// Weight rows per register tile (the assembly of `avx2::step_full` is written for 2).
const RM: usize = 2;
/// Activation rows per register tile (the assembly of `avx2::step_full` is written for 6).
const RN: usize = 6;
/// Weight rows one task packs and owns (a multiple of [`RM`]).
const PANEL_ROWS: usize = 12;
/// Largest quantized activation magnitude.
const QMAX: f32 = 127.0;
/// Groups of the depth multiplied per pass: a panel's 12 rows of them
/// (24 KiB) and one tile's 6 activation rows (12 KiB) fit in L1.
const DEPTH_GROUPS: usize = 4;

/// Whether [`gemm`] computes `x · wᵀ` for these weights on this CPU:
/// packed rows of Q4_0 (AVX2 and up) or Q8_0 (AVX-512 VNNI), with int8
/// activations.
pub(crate) fn applies(w: &In<'_>) -> bool {
    applies_to(&w.desc)
}

/// [`applies`] for a weight described by `w`.
pub(crate) fn applies_to(w: &TensorDesc) -> bool {
    let level = isa();
    let supported = match w.dtype {
        DType::Q4_0 => level.has_avx2(),
        DType::Q8_0 => level == Isa::Avx512,
        _ => false,
    };
    cfg!(target_arch = "x86_64")
        && supported
        && activation_bits() == ActivationBits::Int8
        && w.rows_contiguous()
        && w.shape[1].is_multiple_of(QUANT_BLOCK)
}

/// What the unsigned weight bytes of the layout add to each weight value:
/// its sum with the activations comes back out through `−c·Σq`.
fn weight_offset(dtype: DType) -> i32 {
    if dtype == DType::Q8_0 {
        128
    } else {
        8
    }
}

/// `out = x · wᵀ` (`x` as f32 rows of length `k`, `out` as `[m, n]`) for
/// weights [`applies`] accepted.
pub(crate) fn gemm(xs: &[f32], k: usize, w: &In<'_>, out: &Columns<'_>) {
    assert!(
        applies(w) && w.desc.shape[1] == k,
        "Q4_0 weights on AVX2 or Q8_0 on AVX-512 VNNI"
    );
    let n = w.desc.shape[0];
    let acts = Activations::quantize(xs, k, weight_offset(w.desc.dtype));
    let m_pad = acts.rows;
    (0..n.div_ceil(PANEL_ROWS)).into_par_iter().for_each_init(
        || {
            (
                Panel::default(),
                Scratch::filled(PANEL_ROWS * m_pad, 0.0f32),
            )
        },
        |(panel, sums), task| {
            let j0 = task * PANEL_ROWS;
            let rows = PANEL_ROWS.min(n - j0);
            panel.pack(w, j0..j0 + rows, acts.groups);
            sums.fill(0.0);
            // A slice of the depth at a time, so that the panel's part and
            // one tile's activation rows stay in L1 while every tile of the
            // panel reads them (the whole depth of every activation row
            // would be read from L2 once per pair of weight rows).
            for g0 in (0..acts.groups).step_by(DEPTH_GROUPS) {
                let groups = g0..(g0 + DEPTH_GROUPS).min(acts.groups);
                for c0 in (0..m_pad).step_by(RN) {
                    for r0 in (0..rows).step_by(RM) {
                        let tile = Tile {
                            panel,
                            acts: &acts,
                            r0,
                            c0,
                            groups: groups.clone(),
                        };
                        let mut dots = [[0.0f32; RN]; RM];
                        tile.dots(RM.min(rows - r0), &mut dots);
                        for (r, row) in dots.iter().enumerate().take(rows - r0) {
                            let sums = &mut sums[(r0 + r) * m_pad + c0..][..RN];
                            for (s, d) in sums.iter_mut().zip(row) {
                                *s += d;
                            }
                        }
                    }
                }
            }
            // SAFETY: this task alone owns columns j0..j0 + rows.
            unsafe { out.set_columns(j0, rows, sums, m_pad) };
        },
    );
}

/// Activation rows quantized to signed bytes in the group layout.
struct Activations {
    /// Rows, padded with zero rows to a multiple of [`RN`].
    rows: usize,
    /// Groups of sixteen blocks per row (the depth padded with zero blocks).
    groups: usize,
    /// `rows × groups × GROUP` bytes in the group layout.
    values: Scratch<i8>,
    /// `rows × groups × 16` block scales.
    scales: Scratch<f32>,
    /// `rows × groups × 16` values of `−c·Σq`, one per block (`c` the
    /// weights' offset).
    offsets: Scratch<i32>,
}

impl Activations {
    /// `xs` as rows of `k` quantized, with each block's `−offset·Σq`.
    fn quantize(xs: &[f32], k: usize, offset: i32) -> Self {
        let m = xs.len() / k;
        let rows = m.div_ceil(RN) * RN;
        let groups = k.div_ceil(GROUP);
        let mut values = Scratch::filled(rows * groups * GROUP, 0i8);
        let mut scales = Scratch::filled(rows * groups * GROUP_BLOCKS, 0.0f32);
        let mut offsets = Scratch::filled(rows * groups * GROUP_BLOCKS, 0i32);
        values
            .par_chunks_mut(groups * GROUP)
            .zip(scales.par_chunks_mut(groups * GROUP_BLOCKS))
            .zip(offsets.par_chunks_mut(groups * GROUP_BLOCKS))
            .zip(xs.par_chunks(k))
            .for_each(|(((values, scales), offsets), x)| {
                for (b, block) in x.chunks_exact(QUANT_BLOCK).enumerate() {
                    let group = &mut values[(b / GROUP_BLOCKS) * GROUP..][..GROUP];
                    let (d, sum) = quantize_block(block, b % GROUP_BLOCKS, group);
                    scales[b] = d;
                    offsets[b] = -offset * sum;
                }
            });
        Self {
            rows,
            groups,
            values,
            scales,
            offsets,
        }
    }
}

/// Quantizes one block of 32 activations into lane `lane` of its row's
/// `group`; returns the block's scale and `Σq`. A NaN or infinity makes
/// the scale NaN (and every `q` zero), so every product the block enters is
/// NaN rather than finite.
fn quantize_block(block: &[f32], lane: usize, group: &mut [i8]) -> (f32, i32) {
    assert!(block.len() == QUANT_BLOCK && lane < GROUP_BLOCKS && group.len() >= GROUP);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `applies` checked AVX2; the lengths are asserted above.
    unsafe {
        avx2::quantize_block(block, lane, group)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let finite = block.iter().all(|v| v.is_finite());
        let d = if finite { amax / QMAX } else { f32::NAN };
        let id = if finite && d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (e, v) in block.iter().enumerate() {
            let q = (v * id).round_ties_even().clamp(-QMAX, QMAX) as i8;
            group[position(lane, e)] = q;
            sum += q as i32;
        }
        (d, sum)
    }
}

/// Where element `e` of block `b` of a row lies in the group layout.
fn position(b: usize, e: usize) -> usize {
    let (group, lane) = (b / GROUP_BLOCKS, b % GROUP_BLOCKS);
    group * GROUP + (e / 4) * VECTOR + lane * 4 + e % 4
}

/// A task's weight rows unpacked into the group layout.
#[derive(Default)]
struct Panel {
    /// `rows × groups × GROUP` unsigned weight bytes: Q4_0 nibbles (0..=15)
    /// or Q8_0 bytes offset by 128.
    values: Scratch<u8>,
    /// `rows × groups × 8` block scales (zero past the depth).
    scales: Scratch<f32>,
    groups: usize,
    /// Whether the bytes are Q8_0's (which only the AVX-512 tile may multiply).
    q8: bool,
}

impl Panel {
    /// Unpacks weight rows `rows` of `w` (Q4_0 or Q8_0, packed rows).
    fn pack(&mut self, w: &In<'_>, rows: std::ops::Range<usize>, groups: usize) {
        let k = w.desc.shape[1];
        let blocks = k / QUANT_BLOCK;
        self.groups = groups;
        self.q8 = w.desc.dtype == DType::Q8_0;
        // Not cleared: every byte and scale of every group is written
        // below (blocks past the depth as zeros), and zeroing the panel
        // first cost a few per cent of the product.
        self.values.resize(rows.len() * groups * GROUP, 0);
        self.scales.resize(rows.len() * groups * GROUP_BLOCKS, 0.0);
        let q8 = self.q8;
        let bb = w.desc.dtype.block_bytes();
        for (i, j) in rows.enumerate() {
            let at = w.desc.byte_at(w.desc.row_start(j));
            let row = &w.bytes[at..at + blocks * bb];
            let values = &mut self.values[i * groups * GROUP..(i + 1) * groups * GROUP];
            let scales = &mut self.scales[i * groups * GROUP_BLOCKS..][..groups * GROUP_BLOCKS];
            for (g, dst) in values.chunks_exact_mut(GROUP).enumerate() {
                let first = g * GROUP_BLOCKS;
                let here = GROUP_BLOCKS.min(blocks - first);
                let src = &row[first * bb..(first + here) * bb];
                // Both halves, also one with no blocks left (written as zeros).
                for half in 0..2 {
                    let first = half * HALF_BLOCKS;
                    let count = HALF_BLOCKS.min(here.saturating_sub(first));
                    let src = src.get(first * bb..).unwrap_or_default();
                    let scales = &mut scales[g * GROUP_BLOCKS + first..][..HALF_BLOCKS];
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `applies` checked AVX2; `src` holds `count` ≤ 8
                    // whole blocks, `dst` one group and `scales` eight values.
                    unsafe {
                        avx2::unpack_half(q8, src, count, half, dst, scales)
                    };
                }
            }
        }
    }
}

/// One register tile: weight rows `r0..` of a panel against activation
/// rows `c0..c0 + RN`, over the depth's groups `groups`.
struct Tile<'a> {
    panel: &'a Panel,
    acts: &'a Activations,
    r0: usize,
    c0: usize,
    groups: std::ops::Range<usize>,
}

impl Tile<'_> {
    /// `dots[r][c]` = the dot product of weight row `r0 + r` (`r < rows`)
    /// with activation row `c0 + c` over the tile's groups.
    fn dots(&self, rows: usize, dots: &mut [[f32; RN]; RM]) {
        let g = self.panel.groups;
        assert!(rows > 0 && rows <= RM && self.acts.groups == g && self.groups.end <= g);
        assert!(self.panel.values.len() >= (self.r0 + rows) * g * GROUP);
        assert!(self.panel.scales.len() >= (self.r0 + rows) * g * GROUP_BLOCKS);
        assert!(self.c0 + RN <= self.acts.rows);
        // Offset Q8_0 bytes overflow the AVX2 tile's int16 sums.
        assert!(!self.panel.q8 || isa() == Isa::Avx512);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `applies` checked AVX2 and `isa` AVX-512 where it is
        // used; every row the kernel reads lies in the panel and the
        // activations (asserted above).
        unsafe {
            match (rows, isa() == Isa::Avx512) {
                (2, true) => avx512::tile::<2>(self, dots),
                (_, true) => avx512::tile::<1>(self, dots),
                (2, false) => avx2::tile::<2>(self, dots),
                (_, false) => avx2::tile::<1>(self, dots),
            }
        }
    }
}

/// Where each row of a tile starts: `R` weight rows (values and scales)
/// and [`RN`] activation rows (values, scales, `−c·Σq` offsets).
struct TileRows<const R: usize> {
    wv: [*const u8; R],
    ws: [*const f32; R],
    av: [*const i8; RN],
    asc: [*const f32; RN],
    aoff: [*const i32; RN],
}

impl Tile<'_> {
    /// The start of every row the tile of `R` weight rows reads (the
    /// slicing checks that each row starts inside its array).
    #[inline(always)]
    fn rows<const R: usize>(&self) -> TileRows<R> {
        let groups = self.panel.groups;
        let row = |r: usize| (self.r0 + r) * groups;
        let col = |c: usize| (self.c0 + c) * groups;
        let (panel, acts) = (self.panel, self.acts);
        TileRows {
            wv: std::array::from_fn(|r| panel.values[row(r) * GROUP..].as_ptr()),
            ws: std::array::from_fn(|r| panel.scales[row(r) * GROUP_BLOCKS..].as_ptr()),
            av: std::array::from_fn(|c| acts.values[col(c) * GROUP..].as_ptr()),
            asc: std::array::from_fn(|c| acts.scales[col(c) * GROUP_BLOCKS..].as_ptr()),
            aoff: std::array::from_fn(|c| acts.offsets[col(c) * GROUP_BLOCKS..].as_ptr()),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Every function needs AVX2 and FMA (checked by `applies`).

    use std::arch::x86_64::*;

    use super::{Tile, TileRows, GROUP, GROUP_BLOCKS, HALF_BLOCKS, QMAX, RM, RN, VECTOR};
    use crate::kernels::simd::sum8;

    /// [`super::quantize_block`] (rounding to nearest, ties to even).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_block(
        block: &[f32],
        lane: usize,
        group: &mut [i8],
    ) -> (f32, i32) {
        assert!(block.len() == 32 && lane < GROUP_BLOCKS && group.len() >= GROUP);
        // SAFETY: the 32 values lie inside `block` (asserted).
        let v: [__m256; 4] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(block.as_ptr().add(8 * i)) });
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let abs: [__m256; 4] = std::array::from_fn(|i| _mm256_and_ps(v[i], abs_mask));
        let amax = max8(_mm256_max_ps(
            _mm256_max_ps(abs[0], abs[1]),
            _mm256_max_ps(abs[2], abs[3]),
        ));
        // |v| < ∞ is false for infinities and NaN alike.
        let inf = _mm256_set1_ps(f32::INFINITY);
        let finite = abs
            .iter()
            .all(|a| _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(*a, inf)) == 0xff);
        if !finite {
            for e in 0..32 {
                group[super::position(lane, e)] = 0;
            }
            return (f32::NAN, 0);
        }
        let d = amax / QMAX;
        let id = _mm256_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
        let (lo, hi) = (_mm256_set1_ps(-QMAX), _mm256_set1_ps(QMAX));
        let q: [__m256i; 4] = std::array::from_fn(|i| {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v[i], id),
            );
            _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi))
        });
        let total = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let sum = {
            let mut lanes = [0i32; 8];
            // SAFETY: eight i32 into an array of eight.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), total) };
            lanes.iter().sum()
        };
        // Saturating packs work per 128-bit half; the permutation puts the
        // 32 bytes back in element order.
        let bytes = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(
                _mm256_packs_epi32(q[0], q[1]),
                _mm256_packs_epi32(q[2], q[3]),
            ),
            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
        );
        let mut dwords = [0i32; 8];
        // SAFETY: eight dwords into an array of eight.
        unsafe { _mm256_storeu_si256(dwords.as_mut_ptr().cast(), bytes) };
        // Dword t (elements 4t..4t + 4) goes to lane `lane` of vector t.
        for (t, dword) in dwords.iter().enumerate() {
            group[super::position(lane, 4 * t)..][..4]
                .copy_from_slice(&dword.to_le_bytes().map(|b| b as i8));
        }
        (d, sum)
    }

    /// The largest of eight f32.
    #[target_feature(enable = "avx2")]
    fn max8(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)))
    }

    /// Unpacks `here` ≤ 8 Q4_0 blocks (18 bytes each) or Q8_0 blocks (34
    /// bytes each, `q8`) into half `half` of one group of the layout (Q4_0
    /// nibbles or Q8_0 bytes plus 128 as unsigned bytes, block `8·half + l`
    /// in lane `l` of the half) and their scales into `scales`; missing
    /// blocks are zero.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn unpack_half(
        q8: bool,
        src: &[u8],
        here: usize,
        half: usize,
        dst: &mut [u8],
        scales: &mut [f32],
    ) {
        let bb = if q8 { 34 } else { 18 };
        assert!(here <= HALF_BLOCKS && half < 2 && src.len() >= bb * here && dst.len() >= GROUP);
        assert!(scales.len() >= HALF_BLOCKS);
        let mut halves = [0u16; HALF_BLOCKS];
        for (l, h) in halves.iter_mut().enumerate().take(here) {
            *h = u16::from_le_bytes([src[bb * l], src[bb * l + 1]]);
        }
        // SAFETY: eight u16 in, eight f32 out, both inside their arrays.
        unsafe {
            let h = _mm_loadu_si128(halves.as_ptr().cast());
            _mm256_storeu_ps(scales.as_mut_ptr(), _mm256_cvtph_ps(h));
        }
        let low = _mm_set1_epi8(0x0f);
        let bias = _mm256_set1_epi8(-128);
        // Block l's 32 values in order (Q4_0: low nibbles are elements
        // 0..16, high 16..32).
        let v: [__m256i; 8] = std::array::from_fn(|l| {
            if l >= here {
                return _mm256_setzero_si256();
            }
            let block = src.as_ptr().wrapping_add(bb * l + 2);
            if q8 {
                // SAFETY: block l's 32 bytes lie inside `src` (asserted).
                let q = unsafe { _mm256_loadu_si256(block.cast()) };
                return _mm256_xor_si256(q, bias);
            }
            // SAFETY: block l's 16 bytes of nibbles lie inside `src` (asserted).
            let q = unsafe { _mm_loadu_si128(block.cast()) };
            _mm256_set_m128i(
                _mm_and_si128(_mm_srli_epi16(q, 4), low),
                _mm_and_si128(q, low),
            )
        });
        // An 8×8 transpose of 32-bit lanes: vector t gets dword t of every block.
        let pairs =
            |a: __m256i, b: __m256i| [_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b)];
        let (t01, t23, t45, t67) = (
            pairs(v[0], v[1]),
            pairs(v[2], v[3]),
            pairs(v[4], v[5]),
            pairs(v[6], v[7]),
        );
        // Blocks 0..4 (and 4..8) of dwords 0,1,2,3 in the low half and 4,5,6,7 in the high.
        let lo: [__m256i; 4] = [
            _mm256_unpacklo_epi64(t01[0], t23[0]),
            _mm256_unpackhi_epi64(t01[0], t23[0]),
            _mm256_unpacklo_epi64(t01[1], t23[1]),
            _mm256_unpackhi_epi64(t01[1], t23[1]),
        ];
        let hi: [__m256i; 4] = [
            _mm256_unpacklo_epi64(t45[0], t67[0]),
            _mm256_unpackhi_epi64(t45[0], t67[0]),
            _mm256_unpacklo_epi64(t45[1], t67[1]),
            _mm256_unpackhi_epi64(t45[1], t67[1]),
        ];
        // Half `half` of vector t starts 64·t + 32·half bytes into the group.
        let group = dst.as_mut_ptr();
        // SAFETY: offsets inside the group (t < 8, half < 2).
        let out = |t: usize| unsafe { group.add(VECTOR * t + 32 * half) }.cast::<__m256i>();
        for t in 0..4 {
            // SAFETY: half `half` of vectors t and t + 4 lies inside `dst` (asserted).
            unsafe {
                _mm256_storeu_si256(out(t), _mm256_permute2x128_si256(lo[t], hi[t], 0x20));
                _mm256_storeu_si256(out(t + 4), _mm256_permute2x128_si256(lo[t], hi[t], 0x31));
            }
        }
    }

    /// The tile of exactly `R` weight rows (see [`Tile::dots`]).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const R: usize>(t: &Tile<'_>, dots: &mut [[f32; RN]; RM]) {
        let TileRows {
            wv,
            ws,
            av,
            asc,
            aoff,
        } = t.rows::<R>();
        // Full tiles take the assembly; row tails (R < RM) the intrinsics.
        let w_full: [*const u8; RM] = std::array::from_fn(|r| wv[r.min(R - 1)]);
        let ones = _mm256_set1_epi16(1);
        let mut f = [[_mm256_setzero_ps(); RN]; R];
        // SAFETY (every load): group g < groups of each row lies inside the
        // panel and the activations (the caller asserted the row counts).
        for (g, half) in t.groups.clone().flat_map(|g| [(g, 0), (g, 1)]) {
            // Where the half's first vector starts.
            let base = g * GROUP + 32 * half;
            let acc: [[__m256i; RN]; R] = if R == RM {
                let full = unsafe { half_full(w_full, av, base) };
                std::array::from_fn(|r| full[r])
            } else {
                let mut acc = [[_mm256_setzero_si256(); RN]; R];
                for v in 0..8 {
                    let at = base + VECTOR * v;
                    let w: [__m256i; R] = std::array::from_fn(|r| unsafe {
                        _mm256_loadu_si256(wv[r].add(at).cast())
                    });
                    for c in 0..RN {
                        let a = unsafe { _mm256_loadu_si256(av[c].add(at).cast()) };
                        for r in 0..R {
                            let p = _mm256_maddubs_epi16(w[r], a);
                            acc[r][c] = _mm256_add_epi16(acc[r][c], p);
                        }
                    }
                }
                acc
            };
            let s = g * GROUP_BLOCKS + HALF_BLOCKS * half;
            for c in 0..RN {
                let (da, off) = unsafe {
                    (
                        _mm256_loadu_ps(asc[c].add(s)),
                        _mm256_loadu_si256(aoff[c].add(s).cast()),
                    )
                };
                for r in 0..R {
                    let k = _mm256_mul_ps(da, unsafe { _mm256_loadu_ps(ws[r].add(s)) });
                    let sums = _mm256_add_epi32(_mm256_madd_epi16(acc[r][c], ones), off);
                    f[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), k, f[r][c]);
                }
            }
        }
        for r in 0..R {
            for c in 0..RN {
                dots[r][c] = sum8(f[r][c]);
            }
        }
    }

    /// The half group starting at byte `base` of a full tile:
    /// `acc[r][c] = Σ_v maddubs(w_r, a_c)` over its eight vectors.
    ///
    /// In assembly because the same sequence written with intrinsics came
    /// out of the register allocator with the activation vectors spilled
    /// and reloaded (40–55 GMAC/s in cache against 78–97 for this): here the
    /// twelve accumulators and the two weight vectors stay in registers and
    /// each activation vector is loaded once for both weight rows.
    ///
    /// # Safety
    /// The group holding `base` must be readable in every row.
    #[target_feature(enable = "avx2")]
    unsafe fn half_full(
        w: [*const u8; RM],
        a: [*const i8; RN],
        base: usize,
    ) -> [[__m256i; RN]; RM] {
        let mut acc = [[_mm256_setzero_si256(); RN]; RM];
        for v in 0..8 {
            // SAFETY: vector v of the half lies inside every row (the caller's guarantee).
            unsafe { step_full(w, a, base + VECTOR * v, &mut acc) };
        }
        acc
    }

    /// `acc[r][c] += maddubs(w_r, a_c)` at byte `at` of every row.
    ///
    /// # Safety
    /// Bytes `at..at + 32` of every row must be readable.
    #[target_feature(enable = "avx2")]
    unsafe fn step_full(
        w: [*const u8; RM],
        a: [*const i8; RN],
        at: usize,
        acc: &mut [[__m256i; RN]; RM],
    ) {
        let [[c00, c01, c02, c03, c04, c05], [c10, c11, c12, c13, c14, c15]] = acc;
        // SAFETY: the caller guarantees the reads; nothing else is touched.
        unsafe {
            std::arch::asm!(
                "vmovdqu {w0}, ymmword ptr [{p0} + {at}]",
                "vmovdqu {w1}, ymmword ptr [{p1} + {at}]",
                "vmovdqu {x}, ymmword ptr [{a0} + {at}]",
                "vpmaddubsw {t}, {w0}, {x}",
                "vpaddw {c00}, {c00}, {t}",
                "vpmaddubsw {x}, {w1}, {x}",
                "vpaddw {c10}, {c10}, {x}",
                "vmovdqu {x}, ymmword ptr [{a1} + {at}]",
                "vpmaddubsw {t}, {w0}, {x}",
                "vpaddw {c01}, {c01}, {t}",
                "vpmaddubsw {x}, {w1}, {x}",
                "vpaddw {c11}, {c11}, {x}",
                "vmovdqu {x}, ymmword ptr [{a2} + {at}]",
                "vpmaddubsw {t}, {w0}, {x}",
                "vpaddw {c02}, {c02}, {t}",
                "vpmaddubsw {x}, {w1}, {x}",
                "vpaddw {c12}, {c12}, {x}",
                "vmovdqu {x}, ymmword ptr [{a3} + {at}]",
                "vpmaddubsw {t}, {w0}, {x}",
                "vpaddw {c03}, {c03}, {t}",
                "vpmaddubsw {x}, {w1}, {x}",
                "vpaddw {c13}, {c13}, {x}",
                "vmovdqu {x}, ymmword ptr [{a4} + {at}]",
                "vpmaddubsw {t}, {w0}, {x}",
                "vpaddw {c04}, {c04}, {t}",
                "vpmaddubsw {x}, {w1}, {x}",
                "vpaddw {c14}, {c14}, {x}",
                "vmovdqu {x}, ymmword ptr [{a5} + {at}]",
                "vpmaddubsw {t}, {w0}, {x}",
                "vpaddw {c05}, {c05}, {t}",
                "vpmaddubsw {x}, {w1}, {x}",
                "vpaddw {c15}, {c15}, {x}",
                p0 = in(reg) w[0],
                p1 = in(reg) w[1],
                a0 = in(reg) a[0],
                a1 = in(reg) a[1],
                a2 = in(reg) a[2],
                a3 = in(reg) a[3],
                a4 = in(reg) a[4],
                a5 = in(reg) a[5],
                at = in(reg) at,
                c00 = inout(ymm_reg) *c00,
                c01 = inout(ymm_reg) *c01,
                c02 = inout(ymm_reg) *c02,
                c03 = inout(ymm_reg) *c03,
                c04 = inout(ymm_reg) *c04,
                c05 = inout(ymm_reg) *c05,
                c10 = inout(ymm_reg) *c10,
                c11 = inout(ymm_reg) *c11,
                c12 = inout(ymm_reg) *c12,
                c13 = inout(ymm_reg) *c13,
                c14 = inout(ymm_reg) *c14,
                c15 = inout(ymm_reg) *c15,
                w0 = out(ymm_reg) _,
                w1 = out(ymm_reg) _,
                x = out(ymm_reg) _,
                t = out(ymm_reg) _,
                options(nostack, readonly, preserves_flags),
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! Every function needs AVX-512 F, BW and VNNI (checked by `isa()`).

    use std::arch::x86_64::*;

    use super::{Tile, TileRows, GROUP, GROUP_BLOCKS, RM, RN, VECTOR};

    /// The tile of exactly `R` weight rows (see [`Tile::dots`]).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile<const R: usize>(t: &Tile<'_>, dots: &mut [[f32; RN]; RM]) {
        let TileRows {
            wv,
            ws,
            av,
            asc,
            aoff,
        } = t.rows::<R>();
        let mut f = [[_mm512_setzero_ps(); RN]; R];
        // SAFETY (every load): group g < groups of each row lies inside the
        // panel and the activations (the caller asserted the row counts).
        for g in t.groups.clone() {
            let s = g * GROUP_BLOCKS;
            // Each sum starts at its activation block's −c·Σq.
            let mut acc: [[__m512i; RN]; R] = {
                let off: [__m512i; RN] =
                    std::array::from_fn(|c| unsafe { _mm512_loadu_si512(aoff[c].add(s).cast()) });
                [off; R]
            };
            for v in 0..GROUP / VECTOR {
                let at = g * GROUP + VECTOR * v;
                let w: [__m512i; R] =
                    std::array::from_fn(|r| unsafe { _mm512_loadu_si512(wv[r].add(at).cast()) });
                for c in 0..RN {
                    let a = unsafe { _mm512_loadu_si512(av[c].add(at).cast()) };
                    for r in 0..R {
                        acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], w[r], a);
                    }
                }
            }
            let dw: [__m512; R] = std::array::from_fn(|r| unsafe { _mm512_loadu_ps(ws[r].add(s)) });
            for c in 0..RN {
                let da = unsafe { _mm512_loadu_ps(asc[c].add(s)) };
                for r in 0..R {
                    let k = _mm512_mul_ps(da, dw[r]);
                    f[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][c]), k, f[r][c]);
                }
            }
        }
        for r in 0..R {
            for c in 0..RN {
                dots[r][c] = _mm512_reduce_add_ps(f[r][c]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{quant, DType, Rng, TensorDesc};

    /// Whether this CPU takes the integer path for `dtype` (Q4_0: every
    /// x86-64 CPU with AVX2; Q8_0: AVX-512 VNNI).
    fn runs_here(dtype: DType) -> bool {
        applies(&In {
            desc: TensorDesc::contiguous(dtype, &[1, 32]),
            bytes: &[0; 34],
        })
    }

    #[test]
    fn matches_the_product_with_dequantized_weights() {
        for dtype in [DType::Q4_0, DType::Q8_0] {
            if runs_here(dtype) {
                match_dequantized(dtype);
            }
        }
    }

    fn match_dequantized(dtype: DType) {
        let mut rng = Rng::new(3);
        // Depths inside one group, across groups with a partial last group,
        // across passes, and rows off every tile and panel edge.
        for (m, k, n) in [
            (9, 32, 1),
            (13, 288, 14),
            (4, 256, 3),
            (17, 800, 25),
            (64, 2048, 12),
            // More groups than one pass over the depth takes, the last partial.
            (19, 2336, 13),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            // Q8_0 weights as large as the format holds, so the bytes reach ±127.
            let wv: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bytes = quant::from_f32(dtype, &wv).unwrap();
            let deq = quant::to_f32(dtype, &bytes, n * k).unwrap();
            let w = In {
                desc: TensorDesc::contiguous(dtype, &[n, k]),
                bytes: &bytes,
            };
            let mut got = vec![f32::NAN; m * n];
            gemm(&x, k, &w, &Columns::new(&mut got, m, n));
            let (mut err, mut norm) = (0.0f64, 0.0f64);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| x[i * k + p] as f64 * deq[j * k + p] as f64)
                        .sum();
                    let g = got[i * n + j] as f64;
                    // Each value within a few activation steps of the exact product.
                    let bound = 4.0 * (k as f64).sqrt() / QMAX as f64;
                    assert!(
                        (g - want).abs() <= bound,
                        "{dtype} m={m} k={k} n={n} ({i},{j}): {g} vs {want}"
                    );
                    err += (g - want).powi(2);
                    norm += want * want;
                }
            }
            assert!(
                err / norm < 1e-4,
                "{dtype} m={m} k={k} n={n}: NMSE {}",
                err / norm
            );
        }
    }

    #[test]
    fn reads_rows_of_a_strided_view() {
        use crate::kernels::strided_weights::{match_compact_copy, K, N};
        let (m, k, n) = (11, K, N);
        for dtype in [DType::Q4_0, DType::Q8_0] {
            if !runs_here(dtype) {
                continue;
            }
            let mut rng = Rng::new(5);
            let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            match_compact_copy(dtype, &mut rng, |w| {
                let mut out = vec![f32::NAN; m * n];
                gemm(&x, k, w, &Columns::new(&mut out, m, n));
                out
            });
        }
    }

    #[test]
    fn the_layout_puts_block_l_in_lane_l() {
        // Element e of block b, for the kernel's vector t = e / 4 and lane l = b % 16.
        assert_eq!(position(0, 0), 0);
        assert_eq!(position(1, 0), 4);
        assert_eq!(position(0, 4), 64);
        assert_eq!(position(8, 0), 32);
        assert_eq!(position(15, 31), 7 * 64 + 15 * 4 + 3);
        assert_eq!(position(16, 0), GROUP);
    }
}
