//! The prefill GEMM: `out[M, N] = x[M, K] · w[N, K]ᵀ` for many activation rows.
//!
//! Weights of any dtype and view are converted to f32 one panel at a time
//! ([`PANEL_ROWS`] rows × [`DEPTH`] columns; Q8_0/Q4_0 dequantized, which
//! is exact in f32) and the panel is reused by every activation row, so the
//! conversion is paid once per weight and the products run at the FMA rate
//! with f32 activations: no activation is quantized. The activations are
//! packed once per product into blocks of [`block_rows`] rows laid out
//! depth-major, so a register tile loads a block's activations as two
//! vectors (of eight on AVX2, of sixteen on AVX-512), broadcasts one weight
//! of each of the tile's panel rows ([`MR`], or the whole panel on AVX-512)
//! and issues two FMAs per row into accumulators that stay in registers for
//! the whole depth: no horizontal sums. Each task writes its column range of
//! the result in place. The depth blocking keeps the converted panel in L1;
//! each tile streams its activation block from L2 (passes of 512 columns
//! measured faster than 256 on AVX-512 and the same on AVX2).
//!
//! BF16 weights on a CPU with AVX-512 BF16 are not converted: panels hold
//! their bytes as stored, activations are rounded to bf16 once per product
//! and packed as pairs along the depth ([`Words::Bf16Pairs`]), and the tile
//! makes two products per f32 lane with `vdpbf16ps` (f32 accumulation).
//! Rounding the activations costs precision (conformance NMSE about 2e-6
//! against the f64 reference instead of 1e-14; a bf16 case allows 5e-4), as
//! llama.cpp's BF16 products do, for 1.7× the f32 tile's speed.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::columns::Columns;
use super::scratch::CacheLine;
use super::simd::{self, isa, Isa};
use super::{In, Scratch};
use glmhal_hal::{DType, TensorDesc};

/// Weight rows one task converts and owns (its outputs are a contiguous
/// block); a multiple of [`MR`].
const PANEL_ROWS: usize = 12;
/// Columns of `K` converted and multiplied per pass (a multiple of the quantization block).
const DEPTH: usize = 512;
/// Distance between two rows of a converted panel: one cache line more
/// than [`DEPTH`], so the rows a tile broadcasts from do not all fall in the
/// same few L1 sets; a constant, so the kernels address rows with
/// immediate offsets.
const PANEL_STRIDE: usize = DEPTH + 16;
/// Weight rows per register tile (AVX2 and portable: 12 accumulators of 16).
const MR: usize = 6;
/// Weight rows per AVX-512 register tile: a whole panel, 24 accumulators of 32.
const MR_AVX512: usize = PANEL_ROWS;

/// Weight rows per register tile on this CPU.
fn tile_rows() -> usize {
    if isa() == Isa::Avx512 {
        MR_AVX512
    } else {
        MR
    }
}

/// Activation rows per packed block and register tile: two vectors of the
/// widest registers the tile uses (eight f32 on AVX2 and portably, sixteen
/// on AVX-512).
fn block_rows() -> usize {
    if isa() == Isa::Avx512 {
        32
    } else {
        16
    }
}

/// What one 32-bit word of the packed activations and of a panel holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Words {
    /// One f32 (weights converted to f32, activations as given).
    F32,
    /// Two bf16 consecutive along the depth, the lower one in the low half:
    /// BF16 weights as stored, with activations rounded to bf16 (to nearest
    /// even; within the NMSE that conformance allows a bf16 case), for
    /// AVX-512 BF16's `vdpbf16ps`, which makes two products per f32 lane.
    Bf16Pairs,
}

impl Words {
    /// Depth elements per word.
    fn per_word(self) -> usize {
        match self {
            Words::F32 => 1,
            Words::Bf16Pairs => 2,
        }
    }
}

/// Whether [`gemm`] multiplies `w` as bf16 pairs (`vdpbf16ps`), rounding
/// the activations to bf16: packed bf16 rows on a CPU with AVX-512 BF16.
pub(crate) fn rounds_activations_to_bf16(w: &TensorDesc) -> bool {
    w.dtype == DType::Bf16 && w.rows_contiguous() && block_rows() == 32 && simd::has_avx512_bf16()
}

/// `out = x · wᵀ` (`x` as f32 rows of length `k`, `out` as `[m, n]`).
pub(crate) fn gemm(xs: &[f32], k: usize, w: &In<'_>, out: &Columns<'_>) {
    let m = out.rows();
    let n = w.desc.shape[0];
    let nc = block_rows();
    let mr = tile_rows();
    let blocks = m.div_ceil(nc);
    let m_pad = blocks * nc;
    let words = if rounds_activations_to_bf16(&w.desc) {
        Words::Bf16Pairs
    } else {
        Words::F32
    };
    let per_word = words.per_word();
    // Words per activation row.
    let kw = k.div_ceil(per_word);
    // Packed activations: word (b·kw + p)·nc + c holds x[b·nc + c][p] (or
    // its pair p); rows past m and the depth stay zero.
    let mut packed = CacheLines::zeroed(m_pad * kw);
    // One task per block of nc rows: each writes its own contiguous block.
    packed
        .as_mut_slice()
        .par_chunks_mut(kw * nc)
        .zip(xs.par_chunks(k * nc))
        .for_each(|(block, rows)| {
            for (c, row) in rows.chunks_exact(k).enumerate() {
                match words {
                    Words::F32 => {
                        for (p, v) in row.iter().enumerate() {
                            block[p * nc + c] = *v;
                        }
                    }
                    Words::Bf16Pairs => {
                        let mut pairs = [0.0f32; 16];
                        for (p0, part) in (0..).step_by(16).zip(row.chunks(32)) {
                            let n = bf16_pairs(part, &mut pairs);
                            for (p, word) in pairs[..n].iter().enumerate() {
                                block[(p0 + p) * nc + c] = *word;
                            }
                        }
                    }
                }
            }
        });
    let xp = packed.as_slice();
    (0..n.div_ceil(PANEL_ROWS)).into_par_iter().for_each_init(
        || {
            (
                CacheLines::zeroed(PANEL_ROWS * PANEL_STRIDE),
                Scratch::filled(PANEL_ROWS * m_pad, 0.0f32),
            )
        },
        |(panel, sums), task| {
            let panel = panel.as_mut_slice();
            let j0 = task * PANEL_ROWS;
            let rows = PANEL_ROWS.min(n - j0);
            // Where this panel's rows and the next panel's start, found once
            // per task rather than once per row and pass.
            let here = RowStarts::new(w, j0..j0 + rows);
            let after = RowStarts::new(w, j0 + rows..(j0 + 2 * rows).min(n));
            sums.fill(0.0);
            for k0 in (0..k).step_by(DEPTH) {
                let depth = DEPTH.min(k - k0);
                // Words of this pass per row.
                let depth_words = depth.div_ceil(per_word);
                for (jj, dst) in panel.chunks_exact_mut(PANEL_STRIDE).take(rows).enumerate() {
                    match words {
                        Words::F32 => here.read(w, jj, j0 + jj, k0, &mut dst[..depth]),
                        Words::Bf16Pairs => here.read_pairs(w, jj, k0, depth, dst),
                    }
                }
                // The next pass's weights arrive from memory while this
                // one computes, each tile asking for its share a line every
                // few depth steps; the last pass asks for the first of the
                // panel that follows (the next task a worker takes is
                // usually that one).
                let tiles = blocks * rows.div_ceil(mr);
                let mut next = if k0 + DEPTH < k {
                    Prefetch::new(w, &here, k0 + DEPTH, k, tiles)
                } else {
                    Prefetch::new(w, &after, 0, k, tiles)
                };
                for b in 0..blocks {
                    let at = b * kw + k0 / per_word;
                    let x = &xp[at * nc..(at + depth_words) * nc];
                    for jr in (0..rows).step_by(mr) {
                        let tile = Tile {
                            w: &panel[jr * PANEL_STRIDE..],
                            x,
                            ldx: nc,
                            cols: nc.min(m - b * nc),
                            depth: depth_words,
                            words,
                        };
                        let out = &mut sums[jr * m_pad + b * nc..];
                        tile.accumulate(mr.min(rows - jr), out, m_pad, &mut next);
                    }
                }
            }
            // SAFETY: this task alone owns columns j0..j0 + rows.
            unsafe { out.set_columns(j0, rows, sums, m_pad) };
        },
    );
}

/// Byte offsets of the first weight of up to [`PANEL_ROWS`] packed rows
/// (none for other views, which are read element by element).
struct RowStarts(SmallVec<[usize; PANEL_ROWS]>);

impl RowStarts {
    fn new(w: &In<'_>, rows: std::ops::Range<usize>) -> Self {
        let packed = w.desc.rows_contiguous();
        RowStarts(
            rows.filter(|_| packed)
                .map(|j| w.desc.byte_at(w.desc.row_start(j)))
                .collect(),
        )
    }

    /// Columns `col..col + depth` of the `i`-th of these rows (BF16,
    /// packed) as bf16 pairs in the first `depth.div_ceil(2)` words of
    /// `dst`, an odd last one paired with zero.
    fn read_pairs(&self, w: &In<'_>, i: usize, col: usize, depth: usize, dst: &mut [f32]) {
        let at = self.0[i] + 2 * col;
        // The stored bytes are the pairs already (little-endian bf16 in order).
        let dst = &mut super::f32_bytes_mut(dst)[..4 * depth.div_ceil(2)];
        dst[..2 * depth].copy_from_slice(&w.bytes[at..at + 2 * depth]);
        dst[2 * depth..].fill(0);
    }

    /// Columns `col..col + dst.len()` of weight row `row`, the `i`-th of
    /// these rows, as f32 (`col` a multiple of the quantization block).
    fn read(&self, w: &In<'_>, i: usize, row: usize, col: usize, dst: &mut [f32]) {
        match self.0.get(i) {
            Some(&start) => {
                let dtype = w.desc.dtype;
                let at = start + dtype.bytes_for(col);
                simd::to_f32(dtype, &w.bytes[at..at + dtype.bytes_for(dst.len())], dst);
            }
            None => w.read_row_from(row, col, dst),
        }
    }
}

/// Prefetches of the packed weight bytes of the next depth block, spread
/// over the tiles of a pass and, inside each SIMD tile, over its depth
/// steps ([`Pace`]), so the memory system is never flooded: requests
/// issued a tile's whole share at a time stalled the core on requests in
/// flight (on AMD Zen 4, 64×2048×2048 on one thread, criterion, six runs
/// each: F16 87–96 GFLOP/s paced against 76–87, BF16 157–165 against
/// 126–157; AVX2 no different within the noise). A cursor over the rows'
/// byte ranges, so each request costs a few instructions (an iterator over
/// ranges cost a tenth of the product).
struct Prefetch<'a> {
    bytes: &'a [u8],
    /// Where each row's range starts.
    starts: SmallVec<[usize; PANEL_ROWS]>,
    /// Bytes per row's range.
    len: usize,
    /// The row and the offset in it of the next line to request.
    row: usize,
    offset: usize,
    /// Cache lines to request per tile.
    per_tile: usize,
}

impl<'a> Prefetch<'a> {
    /// Columns `from..from + DEPTH` of the rows starting at `rows`, shared by `tiles` tiles.
    fn new(w: &In<'a>, rows: &RowStarts, from: usize, k: usize, tiles: usize) -> Self {
        let mut starts: SmallVec<[usize; PANEL_ROWS]> = SmallVec::new();
        let mut len = 0;
        if from < k && cfg!(target_arch = "x86_64") {
            let skip = w.desc.dtype.bytes_for(from);
            len = w.desc.dtype.bytes_for(DEPTH.min(k - from));
            starts.extend(rows.0.iter().map(|&start| start + skip));
        }
        let lines = starts.len() * len.div_ceil(64);
        Self {
            bytes: w.bytes,
            starts,
            len,
            row: 0,
            offset: 0,
            per_tile: lines.div_ceil(tiles.max(1)),
        }
    }

    /// Requests the next line, if any is left.
    #[inline(always)]
    fn one(&mut self) {
        let Some(&start) = self.starts.get(self.row) else {
            return;
        };
        simd::prefetch_line(self.bytes.as_ptr().wrapping_add(start + self.offset));
        self.offset += 64;
        if self.offset >= self.len {
            self.offset = 0;
            self.row += 1;
        }
    }

    /// The pace of a tile `depth` steps deep: its share of the requests,
    /// one every few steps.
    fn pace(&self, depth: usize) -> Pace {
        let every = (depth / self.per_tile.max(1)).max(1);
        Pace {
            every,
            countdown: every,
        }
    }

    /// Requests a tile's share at once (the portable tile, which does not pace).
    fn some(&mut self) {
        for _ in 0..self.per_tile {
            self.one();
        }
    }
}

/// Where a tile's loop is in its share of a [`Prefetch`]: a request every
/// `every` depth steps.
struct Pace {
    every: usize,
    countdown: usize,
}

impl Pace {
    /// One depth step: a request when its turn comes.
    #[inline(always)]
    fn step(&mut self, next: &mut Prefetch<'_>) {
        self.countdown -= 1;
        if self.countdown == 0 {
            self.countdown = self.every;
            next.one();
        }
    }
}

/// Up to 32 activations as words of [`Words::Bf16Pairs`] (returns how
/// many): each rounded to bf16 (to nearest even), the first of a pair in
/// the low half, a missing second as zero.
fn bf16_pairs(part: &[f32], words: &mut [f32; 16]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if part.len() == 32 && simd::has_avx512_bf16() {
        // SAFETY: the CPU has AVX-512 F and BF16 (checked just above).
        unsafe { avx512::bf16_pairs(part, words) };
        return 16;
    }
    let bits = |v: f32| half::bf16::from_f32(v).to_bits() as u32;
    for (word, pair) in words.iter_mut().zip(part.chunks(2)) {
        let hi = pair.get(1).map_or(0, |v| bits(*v));
        *word = f32::from_bits(bits(pair[0]) | hi << 16);
    }
    part.len().div_ceil(2)
}

/// f32 storage that starts on a 64-byte cache line (from the scratch pool,
/// so a product allocates nothing once the pool has its sizes).
struct CacheLines {
    lines: Scratch<CacheLine>,
    len: usize,
}

impl CacheLines {
    fn zeroed(len: usize) -> Self {
        Self {
            lines: Scratch::filled(len.div_ceil(16), CacheLine([0.0; 16])),
            len,
        }
    }

    fn as_slice(&self) -> &[f32] {
        // SAFETY: `CacheLine` is 16 f32 with no padding; `len` ≤ 16 × lines.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// One register tile: up to [`tile_rows`] panel rows ([`PANEL_STRIDE`] apart) against one
/// packed block of `ldx` activation rows (the first `cols` of them real),
/// over `depth` words of the depth, each holding what `words` says.
#[derive(Clone, Copy)]
struct Tile<'a> {
    w: &'a [f32],
    x: &'a [f32],
    ldx: usize,
    cols: usize,
    depth: usize,
    words: Words,
}

impl Tile<'_> {
    /// `out[r·ldo + c] += Σ_p w[r][p]·x[p][c]` for `r < rows` and every `c`
    /// of the block (on AVX-512, only the first sixteen when `cols` ≤ 16:
    /// the rest are padding nobody reads).
    fn accumulate(&self, rows: usize, out: &mut [f32], ldo: usize, next: &mut Prefetch<'_>) {
        let nc = self.ldx;
        assert!(rows > 0 && rows <= tile_rows() && ldo >= nc && self.cols <= nc);
        assert!(self.depth <= DEPTH && self.w.len() >= (rows - 1) * PANEL_STRIDE + self.depth);
        assert!(self.x.len() >= self.depth * nc);
        assert!(out.len() >= (rows - 1) * ldo + nc);
        if self.words == Words::Bf16Pairs {
            assert!(
                nc == 32 && simd::has_avx512_bf16(),
                "bf16 pairs need AVX-512 BF16"
            );
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512 F and BF16 (asserted); the slices
            // hold everything the tile reads and writes (asserted above).
            unsafe {
                avx512::accumulate_pairs(self, rows, out, ldo, next)
            };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        match isa() {
            Isa::Avx512 if nc == 32 => {
                // SAFETY: the CPU has AVX-512 F (checked by `isa`); the
                // slices hold everything the tile reads and writes
                // (asserted above).
                unsafe { avx512::accumulate(self, rows, out, ldo, next) };
                return;
            }
            Isa::Avx2 if nc == 16 => {
                // SAFETY: the CPU has AVX2 and FMA (checked by `isa`); as above.
                unsafe { avx2::accumulate(self, rows, out, ldo, next) };
                return;
            }
            _ => {}
        }
        next.some();
        for r in 0..rows {
            let w = &self.w[r * PANEL_STRIDE..r * PANEL_STRIDE + self.depth];
            let out = &mut out[r * ldo..r * ldo + nc];
            for (wp, xs) in w.iter().zip(self.x.chunks_exact(nc)) {
                for (o, x) in out.iter_mut().zip(xs) {
                    *o += wp * x;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 + FMA tile; every function needs both (the caller checked `isa()`).

    use std::arch::x86_64::*;

    use super::{Prefetch, Tile, PANEL_STRIDE};

    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel<const R: usize>(
        t: &Tile<'_>,
        out: &mut [f32],
        ldo: usize,
        next: &mut Prefetch<'_>,
    ) {
        let mut lo = [_mm256_setzero_ps(); R];
        let mut hi = [_mm256_setzero_ps(); R];
        let (w, x) = (t.w.as_ptr(), t.x.as_ptr());
        let mut pace = next.pace(t.depth);
        // SAFETY (every load): p < depth, rows r < R and 16 activations per
        // p lie inside the slices (asserted by `Tile::accumulate`).
        for p in 0..t.depth {
            pace.step(next);
            let (x0, x1) = unsafe {
                (
                    _mm256_loadu_ps(x.add(16 * p)),
                    _mm256_loadu_ps(x.add(16 * p + 8)),
                )
            };
            for r in 0..R {
                let wv = unsafe { _mm256_broadcast_ss(&*w.add(r * PANEL_STRIDE + p)) };
                lo[r] = _mm256_fmadd_ps(wv, x0, lo[r]);
                hi[r] = _mm256_fmadd_ps(wv, x1, hi[r]);
            }
        }
        for r in 0..R {
            let o = out[r * ldo..r * ldo + 16].as_mut_ptr();
            // SAFETY: `o` points at 16 f32 of `out`.
            unsafe {
                _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), lo[r]));
                _mm256_storeu_ps(o.add(8), _mm256_add_ps(_mm256_loadu_ps(o.add(8)), hi[r]));
            }
        }
    }

    /// Dispatches to the tile of exactly `rows` panel rows.
    pub(super) unsafe fn accumulate(
        t: &Tile<'_>,
        rows: usize,
        out: &mut [f32],
        ldo: usize,
        next: &mut Prefetch<'_>,
    ) {
        // SAFETY: the caller checked the CPU features and the bounds.
        unsafe {
            match rows {
                6 => kernel::<6>(t, out, ldo, next),
                5 => kernel::<5>(t, out, ldo, next),
                4 => kernel::<4>(t, out, ldo, next),
                3 => kernel::<3>(t, out, ldo, next),
                2 => kernel::<2>(t, out, ldo, next),
                _ => kernel::<1>(t, out, ldo, next),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! The AVX-512 tiles: two vectors of sixteen activations (one when the
    //! block's real rows fit in one), f32 FMAs (`kernel`, AVX-512 F) or
    //! bf16 pair products (`kernel_pairs`, AVX-512 F and BF16); the caller
    //! checked the features.

    use std::arch::x86_64::*;

    use super::{Prefetch, Tile, PANEL_STRIDE};

    /// The same 512 bits as 32 bf16.
    #[inline]
    fn as_bf16(v: __m512i) -> __m512bh {
        // SAFETY: both are 64 bytes of plain bits; every pattern is valid.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }

    /// 32 activations rounded to bf16 (to nearest even, as
    /// `half::bf16::from_f32`) as 16 pair words.
    ///
    /// # Safety
    /// The CPU has AVX-512 F and BF16; `part` holds 32 values.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn bf16_pairs(part: &[f32], words: &mut [f32; 16]) {
        assert!(part.len() >= 32);
        // SAFETY: 32 values in, 16 words out.
        unsafe {
            let (first, second) = (
                _mm512_loadu_ps(part.as_ptr()),
                _mm512_loadu_ps(part.as_ptr().add(16)),
            );
            // Elements 0..16 from the second operand, 16..32 from the first.
            let bf16 = _mm512_cvtne2ps_pbh(second, first);
            _mm512_storeu_si512(
                words.as_mut_ptr().cast(),
                std::mem::transmute::<__m512bh, __m512i>(bf16),
            );
        }
    }

    /// Adds the tile's accumulators to `out` (row `r` at `r·ldo`).
    ///
    /// # Safety
    /// The CPU has AVX-512 F and `out` holds `(R − 1)·ldo + 16·V` values.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn add_into<const R: usize, const V: usize>(
        acc: &[[__m512; V]; R],
        out: &mut [f32],
        ldo: usize,
    ) {
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                let o = out[r * ldo + 16 * v..r * ldo + 16 * v + 16].as_mut_ptr();
                // SAFETY: `o` points at 16 f32 of `out`.
                unsafe { _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), *a)) };
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize, const V: usize>(
        t: &Tile<'_>,
        out: &mut [f32],
        ldo: usize,
        next: &mut Prefetch<'_>,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let (w, x) = (t.w.as_ptr(), t.x.as_ptr());
        let mut pace = next.pace(t.depth);
        // SAFETY (every load): p < depth, rows r < R and 16·V ≤ ldx
        // activations per p lie inside the slices (asserted by `Tile::accumulate`).
        for p in 0..t.depth {
            pace.step(next);
            let xv: [__m512; V] =
                std::array::from_fn(|v| unsafe { _mm512_loadu_ps(x.add(t.ldx * p + 16 * v)) });
            for (r, row) in acc.iter_mut().enumerate() {
                let wv = _mm512_set1_ps(unsafe { *w.add(r * PANEL_STRIDE + p) });
                for (a, x) in row.iter_mut().zip(&xv) {
                    *a = _mm512_fmadd_ps(wv, *x, *a);
                }
            }
        }
        // SAFETY: as asserted by `Tile::accumulate`.
        unsafe { add_into(&acc, out, ldo) }
    }

    /// As `kernel`, each word of the panel and the activations a pair of
    /// bf16 along the depth: one `vdpbf16ps` per row and vector adds both
    /// products to the f32 accumulators.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel_pairs<const R: usize, const V: usize>(
        t: &Tile<'_>,
        out: &mut [f32],
        ldo: usize,
        next: &mut Prefetch<'_>,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let (w, x) = (t.w.as_ptr(), t.x.as_ptr());
        let mut pace = next.pace(t.depth);
        // SAFETY (every load): as in `kernel`, in words.
        for p in 0..t.depth {
            pace.step(next);
            let xv: [__m512bh; V] = std::array::from_fn(|v| unsafe {
                as_bf16(_mm512_loadu_si512(x.add(t.ldx * p + 16 * v).cast()))
            });
            for (r, row) in acc.iter_mut().enumerate() {
                // The word's bits, not its value as an f32: a broadcast moves them unchanged.
                let pair = unsafe { w.add(r * PANEL_STRIDE + p).cast::<i32>().read() };
                let wv = as_bf16(_mm512_set1_epi32(pair));
                for (a, x) in row.iter_mut().zip(&xv) {
                    *a = _mm512_dpbf16_ps(*a, wv, *x);
                }
            }
        }
        // SAFETY: as asserted by `Tile::accumulate`.
        unsafe { add_into(&acc, out, ldo) }
    }

    /// Calls `$kernel::<R, V>` for exactly `$rows` panel rows and as many
    /// vectors as the block's real rows need, a partial panel (more than
    /// six rows, fewer than twelve) as six rows and then the rest.
    macro_rules! dispatch {
        ($kernel:ident, $again:ident, $t:expr, $rows:expr, $out:expr, $ldo:expr, $next:expr) => {{
            let (t, out, ldo, next): (&Tile<'_>, &mut [f32], usize, &mut Prefetch<'_>) =
                ($t, $out, $ldo, $next);
            match ($rows, t.cols > 16) {
                (12, true) => $kernel::<12, 2>(t, out, ldo, next),
                (12, false) => $kernel::<12, 1>(t, out, ldo, next),
                (r, _) if r > 6 => {
                    $again(t, 6, out, ldo, next);
                    let rest = Tile {
                        w: &t.w[6 * PANEL_STRIDE..],
                        ..*t
                    };
                    $again(&rest, r - 6, &mut out[6 * ldo..], ldo, next);
                }
                (6, true) => $kernel::<6, 2>(t, out, ldo, next),
                (5, true) => $kernel::<5, 2>(t, out, ldo, next),
                (4, true) => $kernel::<4, 2>(t, out, ldo, next),
                (3, true) => $kernel::<3, 2>(t, out, ldo, next),
                (2, true) => $kernel::<2, 2>(t, out, ldo, next),
                (_, true) => $kernel::<1, 2>(t, out, ldo, next),
                (6, false) => $kernel::<6, 1>(t, out, ldo, next),
                (5, false) => $kernel::<5, 1>(t, out, ldo, next),
                (4, false) => $kernel::<4, 1>(t, out, ldo, next),
                (3, false) => $kernel::<3, 1>(t, out, ldo, next),
                (2, false) => $kernel::<2, 1>(t, out, ldo, next),
                (_, false) => $kernel::<1, 1>(t, out, ldo, next),
            }
        }};
    }

    /// The f32 tile of exactly `rows` panel rows.
    pub(super) unsafe fn accumulate(
        t: &Tile<'_>,
        rows: usize,
        out: &mut [f32],
        ldo: usize,
        next: &mut Prefetch<'_>,
    ) {
        // SAFETY: the caller checked the CPU features and the bounds.
        unsafe { dispatch!(kernel, accumulate, t, rows, out, ldo, next) }
    }

    /// The bf16-pair tile of exactly `rows` panel rows.
    pub(super) unsafe fn accumulate_pairs(
        t: &Tile<'_>,
        rows: usize,
        out: &mut [f32],
        ldo: usize,
        next: &mut Prefetch<'_>,
    ) {
        // SAFETY: the caller checked the CPU features (BF16 included) and the bounds.
        unsafe { dispatch!(kernel_pairs, accumulate_pairs, t, rows, out, ldo, next) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{quant, DType, Rng, TensorDesc};

    #[test]
    fn every_tile_edge_matches_a_plain_product() {
        let mut rng = Rng::new(7);
        // Depths below, at and across the panel depth, with vector tails.
        for (m, k, n) in [
            (9, 40, 11),
            (13, 1029, 6),
            (4, 8, 1),
            (10, 512, 9),
            (17, 300, 25),
            (32, 64, 13),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let wv: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bytes = quant::from_f32(DType::F32, &wv).unwrap();
            let w = In {
                desc: TensorDesc::contiguous(DType::F32, &[n, k]),
                bytes: &bytes,
            };
            let mut got = vec![f32::NAN; m * n];
            gemm(&x, k, &w, &Columns::new(&mut got, m, n));
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| x[i * k + p] as f64 * wv[j * k + p] as f64)
                        .sum();
                    let g = got[i * n + j] as f64;
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "m={m} k={k} n={n} ({i},{j}): {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn activation_pairs_round_to_bf16_as_the_half_crate_does() {
        // Ties (1 + 2⁻⁸ rounds down to even, 1 + 3·2⁻⁸ up), signs, large
        // values, ±∞ and NaN; subnormals are left out: AVX-512 BF16 flushes
        // them to zero, a difference below 1.2e-38.
        let mut rng = Rng::new(5);
        let mut part: Vec<f32> = (0..32).map(|_| rng.uniform(-3.0, 3.0)).collect();
        part[..8].copy_from_slice(&[
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            -(1.0 + 1.0 / 256.0),
            3.0e38,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            0.0,
        ]);
        let mut words = [0.0f32; 16];
        assert_eq!(bf16_pairs(&part, &mut words), 16);
        for (i, word) in words.iter().enumerate() {
            let bits = |v: f32| half::bf16::from_f32(v).to_bits() as u32;
            let want = bits(part[2 * i]) | bits(part[2 * i + 1]) << 16;
            assert_eq!(
                word.to_bits(),
                want,
                "pair {i}: {:?}",
                &part[2 * i..2 * i + 2]
            );
        }
        assert_eq!(words[0].to_bits(), 0x3f82_3f80, "ties to even");
        // An odd tail: the last value paired with zero.
        assert_eq!(bf16_pairs(&[1.0, 2.0, 3.0], &mut words), 2);
        assert_eq!(words[1].to_bits(), 0x0000_4040);
    }

    #[test]
    fn bf16_weights_match_the_product_of_what_the_tile_multiplies() {
        // With AVX-512 BF16 the activations are rounded to bf16 too (pairs
        // along the depth, an odd depth's last one paired with zero); else
        // the f32 tile multiplies them as given.
        let pairs = simd::has_avx512_bf16();
        let mut rng = Rng::new(11);
        for (m, k, n) in [
            (9, 40, 11),
            (13, 1029, 14),
            (33, 513, 25),
            (17, 7, 3),
            (64, 2048, 12),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let wv: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bytes = quant::from_f32(DType::Bf16, &wv).unwrap();
            let wq = quant::to_f32(DType::Bf16, &bytes, n * k).unwrap();
            let w = In {
                desc: TensorDesc::contiguous(DType::Bf16, &[n, k]),
                bytes: &bytes,
            };
            let mut got = vec![f32::NAN; m * n];
            gemm(&x, k, &w, &Columns::new(&mut got, m, n));
            let xq: Vec<f32> = if pairs {
                x.iter()
                    .map(|v| half::bf16::from_f32(*v).to_f32())
                    .collect()
            } else {
                x.clone()
            };
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| xq[i * k + p] as f64 * wq[j * k + p] as f64)
                        .sum();
                    let g = got[i * n + j] as f64;
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "pairs={pairs} m={m} k={k} n={n} ({i},{j}): {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn strided_and_transposed_weight_views_match_their_compact_copy() {
        use crate::kernels::strided_weights::{match_compact_copy, K, N};
        let (m, k, n) = (11, K, N);
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let product = |w: &In<'_>| {
            let mut out = vec![f32::NAN; m * n];
            gemm(&x, k, w, &Columns::new(&mut out, m, n));
            out
        };
        for dtype in [DType::F16, DType::Q8_0] {
            match_compact_copy(dtype, &mut rng, product);
        }
        // A transposed f32 view ([k, n] storage read as [n, k]): read element by element.
        let wt: Vec<f32> = (0..k * n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let t_bytes = quant::from_f32(DType::F32, &wt).unwrap();
        let transposed = In {
            desc: TensorDesc::strided(DType::F32, &[n, k], &[1, n], 0),
            bytes: &t_bytes,
        };
        let rows: Vec<f32> = (0..n)
            .flat_map(|j| (0..k).map(move |p| (j, p)))
            .map(|(j, p)| wt[p * n + j])
            .collect();
        let r_bytes = quant::from_f32(DType::F32, &rows).unwrap();
        let packed = In {
            desc: TensorDesc::contiguous(DType::F32, &[n, k]),
            bytes: &r_bytes,
        };
        let (mut a, mut b) = (vec![0.0f32; m * n], vec![1.0f32; m * n]);
        gemm(&x, k, &transposed, &Columns::new(&mut a, m, n));
        gemm(&x, k, &packed, &Columns::new(&mut b, m, n));
        assert_eq!(a, b, "transposed");
    }
}
