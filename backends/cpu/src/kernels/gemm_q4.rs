//! The prefill product for Q4_0 weights, in 8-bit integers (AVX2).
//!
//! Four-bit weights need not go through f32: the activations are quantized
//! once per product to blocks of 32 signed bytes with an f32 scale
//! (`scale = max|x| / 127`, as llama.cpp does for every quantized product;
//! the rounding error, at most half a step of 1/127 of a block's largest
//! value, is a sixteenth of the step of the weights' own four bits), and
//! `maddubs` multiplies 32 unsigned nibbles by 32 signed bytes per
//! instruction, four times the eight products of an f32 FMA, with no
//! weight ever converted to f32.
//!
//! Layout: the depth is cut into groups of eight blocks (256 values).
//! Within a group, vector `t` (of eight) holds bytes `4t..4t + 4` of each
//! of the eight blocks, block `l` in 32-bit lane `l`, for weights and
//! activations alike. The eight `maddubs` of a group, summed lane-wise in
//! int16 (no overflow: at most 8·2·15·127 = 30 480) and paired by `madd`,
//! are then the eight blocks' integer dot products, one per lane: one
//! conversion and one FMA with the eight blocks' scales (weight ×
//! activation) finish a group, instead of one per block. Nibbles stay as
//! stored (0..=15); the −8 offset leaves the integer sums through each
//! activation block's `8·Σq`.
//!
//! Tasks own panels of [`PANEL_ROWS`] weight rows: each packs its panel
//! once (nibbles unpacked and transposed into the layout above) and
//! multiplies it with every activation row, [`RM`] weight rows by [`RN`]
//! activation rows at a time.

use glmhal_hal::{quant::block_scale, QUANT_BLOCK};
use rayon::prelude::*;

use super::columns::Columns;
use super::simd::{isa, Isa};
use super::{In, Scratch};

/// Blocks per group (one per 32-bit lane of a vector).
const GROUP_BLOCKS: usize = 8;
/// Values per group.
const GROUP: usize = GROUP_BLOCKS * QUANT_BLOCK;
/// Weight rows per register tile (the assembly of `avx2::step_full` is written for 3).
const RM: usize = 2;
/// Activation rows per register tile (the assembly of `avx2::step_full` is written for 4).
const RN: usize = 6;
/// Weight rows one task packs and owns (a multiple of [`RM`]).
const PANEL_ROWS: usize = 12;
/// Largest quantized activation magnitude.
const QMAX: f32 = 127.0;

/// Whether [`gemm`] computes `x · wᵀ` for these weights on this CPU:
/// Q4_0 rows stored packed, and AVX2.
pub(super) fn applies(w: &In<'_>) -> bool {
    cfg!(target_arch = "x86_64")
        && isa() == Isa::Avx2
        && w.desc.dtype == glmhal_hal::DType::Q4_0
        && w.desc.rows_contiguous()
        && w.desc.shape[1] % QUANT_BLOCK == 0
}

/// `out = x · wᵀ` (`x` as f32 rows of length `k`, `out` as `[m, n]`) for
/// weights [`applies`] accepted.
pub(super) fn gemm(xs: &[f32], k: usize, w: &In<'_>, out: &Columns<'_>) {
    assert!(applies(w) && w.desc.shape[1] == k, "Q4_0 weights on AVX2");
    let n = w.desc.shape[0];
    let acts = Activations::quantize(xs, k);
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
            for r0 in (0..rows).step_by(RM) {
                for c0 in (0..m_pad).step_by(RN) {
                    let tile = Tile {
                        panel,
                        acts: &acts,
                        r0,
                        c0,
                    };
                    let mut dots = [[0.0f32; RN]; RM];
                    tile.dots(RM.min(rows - r0), &mut dots);
                    for (r, row) in dots.iter().enumerate().take(rows - r0) {
                        sums[(r0 + r) * m_pad + c0..][..RN].copy_from_slice(row);
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
    /// Groups of eight blocks per row (the depth padded with zero blocks).
    groups: usize,
    /// `rows × groups × GROUP` bytes in the group layout.
    values: Scratch<i8>,
    /// `rows × groups × 8` block scales.
    scales: Scratch<f32>,
    /// `rows × groups × 8` values of `8·Σq` per block.
    offsets: Scratch<i32>,
}

impl Activations {
    fn quantize(xs: &[f32], k: usize) -> Self {
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
                    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    // A NaN or infinity makes the block's scale NaN, so
                    // every product it enters is NaN rather than finite.
                    let finite = block.iter().all(|v| v.is_finite());
                    let d = if finite { amax / QMAX } else { f32::NAN };
                    let id = if finite && d > 0.0 { 1.0 / d } else { 0.0 };
                    let mut sum = 0i32;
                    for (e, v) in block.iter().enumerate() {
                        let q = (v * id).round().clamp(-QMAX, QMAX) as i8;
                        values[position(b, e)] = q;
                        sum += q as i32;
                    }
                    scales[b] = d;
                    offsets[b] = 8 * sum;
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

/// Where element `e` of block `b` of a row lies in the group layout.
fn position(b: usize, e: usize) -> usize {
    let (group, lane) = (b / GROUP_BLOCKS, b % GROUP_BLOCKS);
    group * GROUP + (e / 4) * 32 + lane * 4 + e % 4
}

/// A task's weight rows unpacked into the group layout.
#[derive(Default)]
struct Panel {
    /// `rows × groups × GROUP` nibbles (0..=15), one per byte.
    values: Scratch<u8>,
    /// `rows × groups × 8` block scales (zero past the depth).
    scales: Scratch<f32>,
    groups: usize,
}

impl Panel {
    /// Unpacks weight rows `rows` of `w` (Q4_0, packed rows).
    fn pack(&mut self, w: &In<'_>, rows: std::ops::Range<usize>, groups: usize) {
        let k = w.desc.shape[1];
        let blocks = k / QUANT_BLOCK;
        self.groups = groups;
        self.values.clear();
        self.values.resize(rows.len() * groups * GROUP, 0);
        self.scales.clear();
        self.scales.resize(rows.len() * groups * GROUP_BLOCKS, 0.0);
        let bb = w.desc.dtype.block_bytes();
        for (i, j) in rows.enumerate() {
            let at = w.desc.byte_at(w.desc.row_start(j));
            let row = &w.bytes[at..at + blocks * bb];
            let values = &mut self.values[i * groups * GROUP..(i + 1) * groups * GROUP];
            let scales = &mut self.scales[i * groups * GROUP_BLOCKS..][..groups * GROUP_BLOCKS];
            for (s, block) in scales.iter_mut().zip(row.chunks_exact(bb)) {
                *s = block_scale(block);
            }
            for (g, dst) in values.chunks_exact_mut(GROUP).enumerate() {
                let first = g * GROUP_BLOCKS;
                let here = GROUP_BLOCKS.min(blocks - first);
                let src = &row[first * bb..(first + here) * bb];
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `applies` checked AVX2; `src` holds `here` ≤ 8
                // whole blocks and `dst` one group.
                unsafe {
                    avx2::unpack_group(src, here, dst)
                };
            }
        }
    }
}

/// One register tile: weight rows `r0..` of a panel against activation rows `c0..c0 + RN`.
struct Tile<'a> {
    panel: &'a Panel,
    acts: &'a Activations,
    r0: usize,
    c0: usize,
}

impl Tile<'_> {
    /// `dots[r][c]` = the dot product of weight row `r0 + r` (`r < rows`)
    /// with activation row `c0 + c`.
    fn dots(&self, rows: usize, dots: &mut [[f32; RN]; RM]) {
        let g = self.panel.groups;
        assert!(rows > 0 && rows <= RM && self.acts.groups == g);
        assert!(self.panel.values.len() >= (self.r0 + rows) * g * GROUP);
        assert!(self.panel.scales.len() >= (self.r0 + rows) * g * GROUP_BLOCKS);
        assert!(self.c0 + RN <= self.acts.rows);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `applies` checked AVX2; every row the kernel reads lies in
        // the panel and the activations (asserted above).
        unsafe {
            match rows {
                2 => avx2::tile::<2>(self, dots),
                _ => avx2::tile::<1>(self, dots),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! Every function needs AVX2 and FMA (checked by `applies`).

    use std::arch::x86_64::*;

    use super::{Tile, GROUP, GROUP_BLOCKS, RM, RN};
    use crate::kernels::simd::sum8;

    /// Unpacks `here` ≤ 8 Q4_0 blocks (18 bytes each) into one group of the
    /// layout: nibbles as bytes, block `l` in lane `l`; missing blocks are zero.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn unpack_group(src: &[u8], here: usize, dst: &mut [u8]) {
        assert!(here <= GROUP_BLOCKS && src.len() >= 18 * here && dst.len() >= GROUP);
        let low = _mm_set1_epi8(0x0f);
        // Block l's 32 values in order: low nibbles are elements 0..16, high 16..32.
        let v: [__m256i; 8] = std::array::from_fn(|l| {
            if l >= here {
                return _mm256_setzero_si256();
            }
            // SAFETY: block l's 16 bytes of nibbles lie inside `src` (asserted).
            let q = unsafe { _mm_loadu_si128(src.as_ptr().add(18 * l + 2).cast()) };
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
        let out = dst.as_mut_ptr().cast::<__m256i>();
        for t in 0..4 {
            // SAFETY: vectors t and t + 4 of the group lie inside `dst` (asserted).
            unsafe {
                _mm256_storeu_si256(out.add(t), _mm256_permute2x128_si256(lo[t], hi[t], 0x20));
                _mm256_storeu_si256(
                    out.add(t + 4),
                    _mm256_permute2x128_si256(lo[t], hi[t], 0x31),
                );
            }
        }
    }

    /// The tile of exactly `R` weight rows (see [`Tile::dots`]).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile<const R: usize>(t: &Tile<'_>, dots: &mut [[f32; RN]; RM]) {
        let groups = t.panel.groups;
        let row = |r: usize| (t.r0 + r) * groups;
        let col = |c: usize| (t.c0 + c) * groups;
        let wv: [*const u8; R] = std::array::from_fn(|r| t.panel.values[row(r) * GROUP..].as_ptr());
        let ws: [*const f32; R] =
            std::array::from_fn(|r| t.panel.scales[row(r) * GROUP_BLOCKS..].as_ptr());
        let av: [*const i8; RN] = std::array::from_fn(|c| t.acts.values[col(c) * GROUP..].as_ptr());
        let asc: [*const f32; RN] =
            std::array::from_fn(|c| t.acts.scales[col(c) * GROUP_BLOCKS..].as_ptr());
        let aoff: [*const i32; RN] =
            std::array::from_fn(|c| t.acts.offsets[col(c) * GROUP_BLOCKS..].as_ptr());
        // Full tiles take the assembly; row tails (R < RM) the intrinsics.
        let w_full: [*const u8; RM] = std::array::from_fn(|r| wv[r.min(R - 1)]);
        let ones = _mm256_set1_epi16(1);
        let mut f = [[_mm256_setzero_ps(); RN]; R];
        // SAFETY (every load): group g < groups of each row lies inside the
        // panel and the activations (the caller asserted the row counts).
        for g in 0..groups {
            let acc: [[__m256i; RN]; R] = if R == RM {
                let full = unsafe { group_full(w_full, av, g) };
                std::array::from_fn(|r| full[r])
            } else {
                let mut acc = [[_mm256_setzero_si256(); RN]; R];
                for v in 0..8 {
                    let at = g * GROUP + 32 * v;
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
            let s = g * GROUP_BLOCKS;
            for c in 0..RN {
                let (da, off) = unsafe {
                    (
                        _mm256_loadu_ps(asc[c].add(s)),
                        _mm256_loadu_si256(aoff[c].add(s).cast()),
                    )
                };
                for r in 0..R {
                    let k = _mm256_mul_ps(da, unsafe { _mm256_loadu_ps(ws[r].add(s)) });
                    let sums = _mm256_sub_epi32(_mm256_madd_epi16(acc[r][c], ones), off);
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

    /// Group `g` of a full tile: `acc[r][c] = Σ_v maddubs(w_r, a_c)` over
    /// the group's eight vectors.
    ///
    /// In assembly because the same sequence written with intrinsics came
    /// out of the register allocator with the activation vectors spilled
    /// and reloaded (40–55 GMAC/s in cache against 78–97 for this): here the
    /// twelve accumulators and the two weight vectors stay in registers and
    /// each activation vector is loaded once for both weight rows.
    ///
    /// # Safety
    /// Group `g` of every row must be readable.
    #[target_feature(enable = "avx2")]
    unsafe fn group_full(w: [*const u8; RM], a: [*const i8; RN], g: usize) -> [[__m256i; RN]; RM] {
        let mut acc = [[_mm256_setzero_si256(); RN]; RM];
        for v in 0..8 {
            // SAFETY: vector v of group g lies inside every row (the caller's guarantee).
            unsafe { step_full(w, a, g * GROUP + 32 * v, &mut acc) };
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

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{quant, DType, Rng, TensorDesc};

    /// Whether this CPU takes the integer path (every x86-64 CPU with AVX2).
    fn runs_here() -> bool {
        applies(&In {
            desc: TensorDesc::contiguous(DType::Q4_0, &[1, 32]),
            bytes: &[0; 18],
        })
    }

    #[test]
    fn matches_the_product_with_dequantized_weights() {
        if !runs_here() {
            return;
        }
        let mut rng = Rng::new(3);
        // Depths inside one group, across groups with a partial last group,
        // and rows off every tile and panel edge.
        for (m, k, n) in [
            (9, 32, 1),
            (13, 288, 14),
            (4, 256, 3),
            (17, 800, 25),
            (64, 2048, 12),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let wv: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bytes = quant::from_f32(DType::Q4_0, &wv).unwrap();
            let deq = quant::to_f32(DType::Q4_0, &bytes, n * k).unwrap();
            let w = In {
                desc: TensorDesc::contiguous(DType::Q4_0, &[n, k]),
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
                        "m={m} k={k} n={n} ({i},{j}): {g} vs {want}"
                    );
                    err += (g - want).powi(2);
                    norm += want * want;
                }
            }
            assert!(err / norm < 1e-4, "m={m} k={k} n={n}: NMSE {}", err / norm);
        }
    }

    #[test]
    fn reads_rows_of_a_strided_view() {
        if !runs_here() {
            return;
        }
        use crate::kernels::strided_weights::{match_compact_copy, K, N};
        let (m, k, n) = (11, K, N);
        let mut rng = Rng::new(5);
        let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        match_compact_copy(DType::Q4_0, &mut rng, |w| {
            let mut out = vec![f32::NAN; m * n];
            gemm(&x, k, w, &Columns::new(&mut out, m, n));
            out
        });
    }

    #[test]
    fn the_layout_puts_block_l_in_lane_l() {
        // Element e of block b, for the kernel's vector t = e / 4 and lane l = b % 8.
        assert_eq!(position(0, 0), 0);
        assert_eq!(position(1, 0), 4);
        assert_eq!(position(0, 4), 32);
        assert_eq!(position(7, 31), 7 * 32 + 7 * 4 + 3);
        assert_eq!(position(8, 0), GROUP);
    }
}
