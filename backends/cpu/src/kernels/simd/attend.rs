//! Decode attention over a run of cached positions, in registers.
//!
//! One call is one task of [`super::super::attention`]'s decode path: the
//! query heads that share a KV head, against positions `0..len` of that
//! head's keys and values as the cache stores them (f32, f16 or bf16 rows,
//! `stride` bytes apart). It leaves, per query head, the softmax maximum
//! and sum over the run and the unnormalized output, which the caller
//! merges across runs.
//!
//! Three passes over the run:
//! - scores: each key row is loaded into registers once and dotted with
//!   every query head (the queries stay in L1); while it is there, the
//!   value row of the same position is requested into L2;
//! - softmax numerators, head by head;
//! - values: the output of up to eight heads × 32 dimensions is held in
//!   sixteen registers while the run's value rows stream past, so a value
//!   row is never converted twice per head block and the outputs are
//!   stored once. The value rows come from L2, requested in the first
//!   pass: read 64 bytes at a time across rows, they would otherwise
//!   wait on memory for every line.

use glmhal_hal::DType;

use super::{isa, Isa};

/// Cached rows of one KV head: row `j` starts `j·stride` bytes into
/// `bytes` and holds the head's `d` values in `dtype`.
#[derive(Clone, Copy)]
pub(crate) struct PositionRun<'a> {
    /// f32, f16 or bf16.
    pub dtype: DType,
    /// From row 0's first byte to (at least) the last row's last.
    pub bytes: &'a [u8],
    /// Bytes from one position's row to the next one's.
    pub stride: usize,
}

impl PositionRun<'_> {
    /// Panics unless `len` rows of `d` values lie inside the bytes.
    fn check(&self, len: usize, d: usize) {
        assert!(matches!(self.dtype, DType::F32 | DType::F16 | DType::Bf16));
        assert!(len == 0 || self.bytes.len() >= (len - 1) * self.stride + self.dtype.bytes_for(d));
    }
}

/// One task's results: per query head the maximum score and the sum of
/// `e^(score − maximum)`, and the unnormalized `[group, d]` output.
pub(crate) struct RunShare<'a> {
    /// `[group]` maxima.
    pub max: &'a mut [f32],
    /// `[group]` sums.
    pub sum: &'a mut [f32],
    /// `[group, d]` outputs.
    pub out: &'a mut [f32],
}

/// Whether [`attend`] runs on this CPU for heads of `d` values.
pub(crate) fn applies(d: usize) -> bool {
    cfg!(target_arch = "x86_64") && isa() == Isa::Avx512 && matches!(d, 16 | 32 | 64 | 128 | 256)
}

/// `group` query heads (`q`, `[group, d]`, already scaled) against `len`
/// positions of `keys` and `values`; `scores` is scratch of at least
/// `group·len` values. Only where [`applies`] holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    q: &[f32],
    group: usize,
    d: usize,
    keys: &PositionRun<'_>,
    values: &PositionRun<'_>,
    len: usize,
    scores: &mut [f32],
    share: RunShare<'_>,
) {
    assert!(applies(d), "attend without AVX-512 or for heads of {d}");
    assert!(q.len() >= group * d && scores.len() >= group * len);
    assert!(share.max.len() >= group && share.sum.len() >= group && share.out.len() >= group * d);
    keys.check(len, d);
    values.check(len, d);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512 F and BW, AVX2, FMA and F16C (`applies`
    // checked `isa`); every length the kernels rely on is asserted above.
    unsafe {
        let args = (q, group, keys, values, len, scores, share);
        match d {
            16 => avx512::attend::<1>(args),
            32 => avx512::attend::<2>(args),
            64 => avx512::attend::<4>(args),
            128 => avx512::attend::<8>(args),
            _ => avx512::attend::<16>(args),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use glmhal_hal::DType;

    use super::{PositionRun, RunShare};

    /// The arguments of [`super::attend`], checked.
    pub(super) type Args<'a, 'b> = (
        &'a [f32],
        usize,
        &'a PositionRun<'a>,
        &'a PositionRun<'a>,
        usize,
        &'a mut [f32],
        RunShare<'b>,
    );

    /// Key rows requested this many positions ahead of the one being dotted.
    const KEYS_AHEAD: usize = 8;

    /// Values `16·c..16·c + 16` of the row at `row` as f32.
    ///
    /// # Safety
    /// Those values must lie inside the row.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn load16(dtype: DType, row: *const u8, c: usize) -> __m512 {
        // SAFETY: the caller guarantees the 16 values lie inside the row.
        unsafe {
            match dtype {
                DType::F32 => _mm512_loadu_ps(row.add(64 * c).cast()),
                DType::F16 => _mm512_cvtph_ps(_mm256_loadu_si256(row.add(32 * c).cast())),
                _ => {
                    let h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(row.add(32 * c).cast()));
                    _mm512_castsi512_ps(_mm512_slli_epi32::<16>(h))
                }
            }
        }
    }

    /// Asks for every line of `bytes` bytes from `row` into the cache
    /// level `HINT` names; a request never faults, so the row may lie past
    /// the cache (the address is formed with wrapping arithmetic).
    #[target_feature(enable = "avx2")]
    fn request<const HINT: i32>(row: *const u8, bytes: usize) {
        for line in (0..bytes).step_by(64) {
            _mm_prefetch::<HINT>(row.wrapping_add(line).cast());
        }
    }

    /// The kernel for heads of `16·D16` values (see the module's notes).
    ///
    /// # Safety
    /// The CPU has the features enabled here; the arguments passed the
    /// checks of [`super::attend`].
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub(super) unsafe fn attend<const D16: usize>(args: Args<'_, '_>) {
        let (q, group, keys, values, len, scores, share) = args;
        let d = 16 * D16;
        let (kp, vp) = (keys.bytes.as_ptr(), values.bytes.as_ptr());
        let (k_bytes, v_bytes) = (keys.dtype.bytes_for(d), values.dtype.bytes_for(d));
        let (s, qp) = (scores.as_mut_ptr(), q.as_ptr());
        // SAFETY (the loads and stores below): j < len rows of each run,
        // c < D16 chunks of a row, h < group heads of q and of the scores
        // (all asserted by the caller).
        for j in 0..len {
            request::<_MM_HINT_T1>(vp.wrapping_add(j * values.stride), v_bytes);
            request::<_MM_HINT_T0>(kp.wrapping_add((j + KEYS_AHEAD) * keys.stride), k_bytes);
            let row = unsafe { kp.add(j * keys.stride) };
            let mut k = [_mm512_setzero_ps(); D16];
            for (c, v) in k.iter_mut().enumerate() {
                *v = unsafe { load16(keys.dtype, row, c) };
            }
            for h in 0..group {
                let qh = unsafe { qp.add(h * d) };
                let mut acc = _mm512_setzero_ps();
                for (c, kc) in k.iter().enumerate() {
                    acc = _mm512_fmadd_ps(*kc, unsafe { _mm512_loadu_ps(qh.add(16 * c)) }, acc);
                }
                unsafe { *s.add(h * len + j) = _mm512_reduce_add_ps(acc) };
            }
        }
        for h in 0..group {
            let row = &mut scores[h * len..(h + 1) * len];
            let max = row_max(row);
            share.max[h] = max;
            share.sum[h] = super::super::exp_shifted_in_place(row, max);
        }
        let mut h0 = 0;
        while h0 < group {
            // Blocks of eight heads, then four, two and one.
            let block = [8, 4, 2, 1]
                .into_iter()
                .find(|b| *b <= group - h0)
                .unwrap_or(1);
            let out = &mut share.out[h0 * d..(h0 + block) * d];
            let weights = &scores[h0 * len..(h0 + block) * len];
            // SAFETY: as for this function; the block's heads lie inside `scores` and `out`.
            unsafe {
                match block {
                    8 => weigh::<D16, 8>(values, len, weights, out),
                    4 => weigh::<D16, 4>(values, len, weights, out),
                    2 => weigh::<D16, 2>(values, len, weights, out),
                    _ => weigh::<D16, 1>(values, len, weights, out),
                }
            }
            h0 += block;
        }
    }

    /// The largest value of `row` (−∞ for none).
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    fn row_max(row: &[f32]) -> f32 {
        let mut wide = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut chunks = row.chunks_exact(16);
        for c in &mut chunks {
            // SAFETY: c holds 16 values.
            wide = _mm512_max_ps(wide, unsafe { _mm512_loadu_ps(c.as_ptr()) });
        }
        let tail = chunks
            .remainder()
            .iter()
            .fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        _mm512_reduce_max_ps(wide).max(tail)
    }

    /// `out[h] = Σ_j weights[h][j]·v_j` for `H` heads (`weights` is
    /// `[H, len]`, `out` `[H, 16·D16]`), 32 dimensions of every head at a
    /// time in registers.
    ///
    /// # Safety
    /// As for [`attend`]; `weights` and `out` hold `H` heads.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn weigh<const D16: usize, const H: usize>(
        values: &PositionRun<'_>,
        len: usize,
        weights: &[f32],
        out: &mut [f32],
    ) {
        let d = 16 * D16;
        assert!(weights.len() >= H * len && out.len() >= H * d);
        let (vp, wp) = (values.bytes.as_ptr(), weights.as_ptr());
        for c0 in (0..D16).step_by(2) {
            let pair = c0 + 1 < D16;
            let mut acc = [[_mm512_setzero_ps(); 2]; H];
            for j in 0..len {
                // SAFETY: row j < len and chunks c0, c0 + 1 < D16 (when
                // `pair`) lie inside the run; weights[h·len + j] inside `weights`.
                unsafe {
                    let row = vp.add(j * values.stride);
                    let v0 = load16(values.dtype, row, c0);
                    let v1 = if pair {
                        load16(values.dtype, row, c0 + 1)
                    } else {
                        _mm512_setzero_ps()
                    };
                    for (h, a) in acc.iter_mut().enumerate() {
                        let p = _mm512_set1_ps(*wp.add(h * len + j));
                        a[0] = _mm512_fmadd_ps(p, v0, a[0]);
                        a[1] = _mm512_fmadd_ps(p, v1, a[1]);
                    }
                }
            }
            for (h, a) in acc.iter().enumerate() {
                // SAFETY: chunks c0 (and c0 + 1 when `pair`) of head h < H lie inside `out`.
                unsafe {
                    let o = out.as_mut_ptr().add(h * d + 16 * c0);
                    _mm512_storeu_ps(o, a[0]);
                    if pair {
                        _mm512_storeu_ps(o.add(16), a[1]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{quant, Rng};

    /// The task as plain f64 loops over the rows the run holds.
    fn expected(
        q: &[f32],
        group: usize,
        d: usize,
        rows: (&[f32], &[f32]),
        len: usize,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (mut max, mut sum, mut out) =
            (vec![0.0; group], vec![0.0; group], vec![0.0; group * d]);
        for h in 0..group {
            let qh = &q[h * d..(h + 1) * d];
            let scores: Vec<f64> = (0..len)
                .map(|j| {
                    let k = &rows.0[j * d..(j + 1) * d];
                    qh.iter().zip(k).map(|(a, b)| *a as f64 * *b as f64).sum()
                })
                .collect();
            let m = scores.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b));
            max[h] = m;
            for (j, s) in scores.iter().enumerate() {
                let e = (s - m).exp();
                sum[h] += e;
                for (o, v) in out[h * d..(h + 1) * d]
                    .iter_mut()
                    .zip(&rows.1[j * d..(j + 1) * d])
                {
                    *o += e * *v as f64;
                }
            }
        }
        (max, sum, out)
    }

    #[test]
    fn every_head_count_size_and_dtype_matches_plain_loops() {
        if !applies(128) {
            eprintln!("attend: no AVX-512 on this CPU; the general decode path is tested instead");
            return;
        }
        let mut rng = Rng::new(7);
        for d in [16usize, 32, 64, 128, 256] {
            for group in [1usize, 2, 3, 7, 8, 13, 16] {
                for len in [1usize, 5, 16, 37, 256] {
                    let q: Vec<f32> = (0..group * d).map(|_| rng.uniform(-1.0, 1.0)).collect();
                    // Rows of this head sit between another head's, as in the cache.
                    let heads = 2;
                    let keys_all: Vec<f32> = (0..len * heads * d)
                        .map(|_| rng.uniform(-2.0, 2.0))
                        .collect();
                    let values_all: Vec<f32> = (0..len * heads * d)
                        .map(|_| rng.uniform(-2.0, 2.0))
                        .collect();
                    for dtype in [DType::F32, DType::F16, DType::Bf16] {
                        // The rows as stored, and the values they round to.
                        let stored_k = quant::from_f32(dtype, &keys_all).unwrap();
                        let stored_v = quant::from_f32(dtype, &values_all).unwrap();
                        let rounded = |b: &[u8]| quant::to_f32(dtype, b, len * heads * d).unwrap();
                        let (rk, rv) = (rounded(&stored_k), rounded(&stored_v));
                        let head = 1;
                        let own = |all: &[f32]| -> Vec<f32> {
                            (0..len)
                                .flat_map(|j| all[(j * heads + head) * d..][..d].to_vec())
                                .collect()
                        };
                        let (ok, ov) = (own(&rk), own(&rv));
                        let offset = dtype.bytes_for(head * d);
                        let stride = dtype.bytes_for(heads * d);
                        let keys = PositionRun {
                            dtype,
                            bytes: &stored_k[offset..],
                            stride,
                        };
                        let values = PositionRun {
                            dtype,
                            bytes: &stored_v[offset..],
                            stride,
                        };
                        let mut scores = vec![f32::NAN; group * len];
                        let (mut max, mut sum) = (vec![f32::NAN; group], vec![f32::NAN; group]);
                        let mut out = vec![f32::NAN; group * d];
                        let share = RunShare {
                            max: &mut max,
                            sum: &mut sum,
                            out: &mut out,
                        };
                        attend(&q, group, d, &keys, &values, len, &mut scores, share);
                        let (want_max, want_sum, want_out) =
                            expected(&q, group, d, (&ok, &ov), len);
                        let close = |got: f32, want: f64| {
                            (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs())
                        };
                        let at = format!("{dtype} d={d} group={group} len={len}");
                        for h in 0..group {
                            assert!(close(max[h], want_max[h]), "{at} max[{h}]");
                            assert!(close(sum[h], want_sum[h]), "{at} sum[{h}]");
                        }
                        for (i, (got, want)) in out.iter().zip(&want_out).enumerate() {
                            assert!(close(*got, *want), "{at} out[{i}]: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
