//! The prefill GEMM: `out[M, N] = x[M, K] · w[N, K]ᵀ` for many activation rows.
//!
//! Weights of any dtype and view are converted to f32 one panel at a time
//! ([`PANEL_ROWS`] rows × [`DEPTH`] columns; Q8_0/Q4_0 dequantized, which
//! is exact in f32) and the panel is reused by every activation row, so the
//! conversion is paid once per weight and the products run at the FMA rate
//! with f32 activations: no activation is quantized. A register-blocked
//! tile multiplies [`MR`] activation rows with [`NR`] weight rows, holding
//! `MR × NR` accumulators of eight lanes in registers, so each vector it
//! loads feeds three or four FMAs; the depth blocking keeps the panel and
//! the activation slices in L1.

use rayon::prelude::*;

use super::simd::{self, isa, Isa};
use super::In;

/// Weight rows one task converts and owns (its outputs are a contiguous block).
const PANEL_ROWS: usize = 8;
/// Columns of `K` converted and multiplied per pass (a multiple of the quantization block).
const DEPTH: usize = 512;
/// Activation rows per register tile.
const MR: usize = 3;
/// Weight rows per register tile.
const NR: usize = 4;

/// `x · wᵀ` (`x` as f32 rows of length `k`), transposed: element `j·m + i` is
/// output `(i, j)`, so each task writes one contiguous block.
pub(super) fn gemm_transposed(xs: &[f32], m: usize, k: usize, w: &In<'_>, n: usize) -> Vec<f32> {
    // Rows of x and of the panel start on cache lines (k and DEPTH are
    // multiples of 16 in models), so no vector load straddles two lines.
    let mut x_lines = CacheLines::zeroed(m * k);
    x_lines.as_mut_slice().copy_from_slice(xs);
    let xs = x_lines.as_slice();
    let mut out_t = vec![0.0f32; n * m];
    out_t
        .par_chunks_mut(PANEL_ROWS * m)
        .enumerate()
        .for_each_init(
            || {
                (
                    CacheLines::zeroed(PANEL_ROWS * DEPTH),
                    vec![0.0f32; m * PANEL_ROWS],
                )
            },
            |(panel, sums), (task, block)| {
                let panel = panel.as_mut_slice();
                let j0 = task * PANEL_ROWS;
                let rows = block.len() / m;
                sums.fill(0.0);
                for k0 in (0..k).step_by(DEPTH) {
                    let depth = DEPTH.min(k - k0);
                    for (jj, dst) in panel.chunks_exact_mut(DEPTH).take(rows).enumerate() {
                        w.read_row_from(j0 + jj, k0, &mut dst[..depth]);
                    }
                    // The next pass's weights arrive from memory while this
                    // one computes, a few lines per tile of x.
                    let mut next = Prefetch::new(w, j0..j0 + rows, k0 + DEPTH, k, m.div_ceil(MR));
                    // Activation rows outside, panel rows inside: the panel
                    // and one tile of x rows both stay in L1.
                    for ir in (0..m).step_by(MR) {
                        next.some();
                        let mr = MR.min(m - ir);
                        for jr in (0..rows).step_by(NR) {
                            let tile = Tile {
                                x: &xs[ir * k + k0..],
                                ldx: k,
                                w: &panel[jr * DEPTH..],
                                ldw: DEPTH,
                                depth,
                            };
                            let out = &mut sums[ir * PANEL_ROWS + jr..];
                            tile.accumulate(mr, NR.min(rows - jr), out, PANEL_ROWS);
                        }
                    }
                }
                for (jj, col) in block.chunks_exact_mut(m).enumerate() {
                    for (i, o) in col.iter_mut().enumerate() {
                        *o = sums[i * PANEL_ROWS + jj];
                    }
                }
            },
        );
    out_t
}

/// Prefetches of the packed weight bytes of the next depth block, spread
/// over the tiles of a pass so the memory system is never flooded.
struct Prefetch<'a> {
    bytes: &'a [u8],
    /// Byte ranges still to request, one per weight row.
    ranges: Vec<std::ops::Range<usize>>,
    /// Cache lines to request per call to [`Prefetch::some`].
    per_call: usize,
}

impl<'a> Prefetch<'a> {
    /// Columns `from..from + DEPTH` of weight rows `rows`, over `calls` calls.
    fn new(w: &In<'a>, rows: std::ops::Range<usize>, from: usize, k: usize, calls: usize) -> Self {
        let mut ranges = Vec::new();
        if from < k && w.desc.rows_contiguous() && cfg!(target_arch = "x86_64") {
            let len = w.desc.dtype.bytes_for(DEPTH.min(k - from));
            ranges.extend(rows.map(|j| {
                let at = w.desc.byte_at(w.desc.row_start(j) + from);
                at..(at + len).min(w.bytes.len())
            }));
        }
        let lines: usize = ranges.iter().map(|r| r.len().div_ceil(64)).sum();
        Self {
            bytes: w.bytes,
            ranges,
            per_call: lines.div_ceil(calls.max(1)),
        }
    }

    /// Requests the next few lines.
    fn some(&mut self) {
        let mut left = self.per_call;
        while left > 0 {
            let Some(range) = self.ranges.last_mut() else {
                return;
            };
            if range.start >= range.end {
                self.ranges.pop();
                continue;
            }
            let end = (range.start + 64).min(range.end);
            simd::prefetch(&self.bytes[range.start..end]);
            range.start = end;
            left -= 1;
        }
    }
}

/// f32 storage that starts on a 64-byte cache line.
struct CacheLines {
    lines: Vec<Line>,
    len: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl CacheLines {
    fn zeroed(len: usize) -> Self {
        Self {
            lines: vec![Line([0.0; 16]); len.div_ceil(16)],
            len,
        }
    }

    fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is 16 f32 with no padding; `len` ≤ 16 × lines.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.len) }
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.len) }
    }
}

/// One register tile: up to [`MR`] rows of `x` (stride `ldx`) against up to
/// [`NR`] rows of the panel (stride `ldw`), over `depth` columns.
struct Tile<'a> {
    x: &'a [f32],
    ldx: usize,
    w: &'a [f32],
    ldw: usize,
    depth: usize,
}

impl Tile<'_> {
    /// `out[r·ldo + c] += Σ x[r]·w[c]` for `r < mr`, `c < nr`.
    fn accumulate(&self, mr: usize, nr: usize, out: &mut [f32], ldo: usize) {
        assert!(mr <= MR && nr <= NR && mr > 0 && nr > 0);
        assert!(self.x.len() >= (mr - 1) * self.ldx + self.depth);
        assert!(self.w.len() >= (nr - 1) * self.ldw + self.depth);
        assert!(ldo >= nr && out.len() >= (mr - 1) * ldo + nr);
        #[cfg(target_arch = "x86_64")]
        if isa() == Isa::Avx2 {
            // SAFETY: the CPU has AVX2 and FMA (checked by `isa`); the slices
            // hold every row the tile reads and writes (asserted above).
            unsafe { avx2::accumulate(self, mr, nr, out, ldo) };
            return;
        }
        for r in 0..mr {
            let x = &self.x[r * self.ldx..r * self.ldx + self.depth];
            for c in 0..nr {
                out[r * ldo + c] += super::dot(x, &self.w[c * self.ldw..c * self.ldw + self.depth]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The AVX2 + FMA tile; every function needs both (the caller checked `isa()`).

    use std::arch::x86_64::*;

    use super::Tile;

    /// Four horizontal sums at once: lane `c` of the result is the sum of `v[c]`.
    #[target_feature(enable = "avx2,fma")]
    fn sum4(v: [__m256; 4]) -> __m128 {
        let a = _mm256_hadd_ps(v[0], v[1]);
        let b = _mm256_hadd_ps(v[2], v[3]);
        let ab = _mm256_hadd_ps(a, b);
        _mm_add_ps(_mm256_castps256_ps128(ab), _mm256_extractf128_ps(ab, 1))
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel<const R: usize, const C: usize>(t: &Tile<'_>, out: &mut [f32], ldo: usize) {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let (x, w) = (t.x.as_ptr(), t.w.as_ptr());
        let mut i = 0;
        // SAFETY (every load): i + 8 <= depth, and rows r < R, c < C lie inside
        // the slices (asserted by `Tile::accumulate`).
        while i + 8 <= t.depth {
            let mut xv = [_mm256_setzero_ps(); R];
            for (r, v) in xv.iter_mut().enumerate() {
                *v = unsafe { _mm256_loadu_ps(x.add(r * t.ldx + i)) };
            }
            for c in 0..C {
                let wv = unsafe { _mm256_loadu_ps(w.add(c * t.ldw + i)) };
                for r in 0..R {
                    acc[r][c] = _mm256_fmadd_ps(xv[r], wv, acc[r][c]);
                }
            }
            i += 8;
        }
        for r in 0..R {
            let mut four = [_mm256_setzero_ps(); 4];
            four[..C].copy_from_slice(&acc[r]);
            let sums = sum4(four);
            let o = &mut out[r * ldo..r * ldo + C];
            if C == 4 && i == t.depth {
                // SAFETY: `o` holds four f32.
                unsafe {
                    _mm_storeu_ps(o.as_mut_ptr(), _mm_add_ps(_mm_loadu_ps(o.as_ptr()), sums))
                };
                continue;
            }
            let mut lanes = [0.0f32; 4];
            // SAFETY: `lanes` holds four f32.
            unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), sums) };
            for (c, o) in o.iter_mut().enumerate() {
                let tail: f32 = (i..t.depth)
                    .map(|j| t.x[r * t.ldx + j] * t.w[c * t.ldw + j])
                    .sum();
                *o += lanes[c] + tail;
            }
        }
    }

    /// Dispatches to the tile of exactly `mr × nr`.
    pub(super) unsafe fn accumulate(
        t: &Tile<'_>,
        mr: usize,
        nr: usize,
        out: &mut [f32],
        ldo: usize,
    ) {
        // SAFETY: the caller checked the CPU features and the bounds.
        unsafe {
            match (mr, nr) {
                (3, 4) => kernel::<3, 4>(t, out, ldo),
                (3, 3) => kernel::<3, 3>(t, out, ldo),
                (3, 2) => kernel::<3, 2>(t, out, ldo),
                (3, 1) => kernel::<3, 1>(t, out, ldo),
                (2, 4) => kernel::<2, 4>(t, out, ldo),
                (2, 3) => kernel::<2, 3>(t, out, ldo),
                (2, 2) => kernel::<2, 2>(t, out, ldo),
                (2, 1) => kernel::<2, 1>(t, out, ldo),
                (1, 4) => kernel::<1, 4>(t, out, ldo),
                (1, 3) => kernel::<1, 3>(t, out, ldo),
                (1, 2) => kernel::<1, 2>(t, out, ldo),
                _ => kernel::<1, 1>(t, out, ldo),
            }
        }
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
        for (m, k, n) in [(9, 40, 11), (13, 1029, 6), (4, 8, 1), (10, 512, 9)] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let wv: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let bytes = quant::from_f32(DType::F32, &wv).unwrap();
            let w = In {
                desc: TensorDesc::contiguous(DType::F32, &[n, k]),
                bytes: &bytes,
            };
            let got = gemm_transposed(&x, m, k, &w, n);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| x[i * k + p] as f64 * wv[j * k + p] as f64)
                        .sum();
                    let g = got[j * m + i] as f64;
                    assert!(
                        (g - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "m={m} k={k} n={n} ({i},{j}): {g} vs {want}"
                    );
                }
            }
        }
    }
}
