//! Decode attention over a run of cached positions, in registers.
//!
//! One call is one task of [`super::super::attention`]'s decode path: the
//! query heads of one or more KV heads stored next to each other (all of
//! them in the usual `[positions, KV heads, d]` cache, so the run is read
//! front to back), against positions `0..len` of those heads' keys and
//! values as the cache stores them (f32, f16 or bf16, `stride` bytes from
//! one position to the next). It leaves, per query head, the softmax
//! maximum and sum over the run and the unnormalized output, which the
//! caller merges across runs.
//!
//! Three passes over the run:
//! - scores: each key row is loaded into registers once and dotted with
//!   every query head (the queries stay in L1), eight heads' sums reduced
//!   together into one vector; while the row is there, the value row of
//!   the same position is requested into L2;
//! - softmax numerators, eight heads a vector;
//! - values: per 32 positions, whose value rows then sit in L1, the
//!   output of up to eight heads × 32 dimensions is held in sixteen
//!   registers while the rows stream past. The value rows come from L2,
//!   requested in the first pass: read 64 bytes at a time across rows,
//!   they would otherwise wait on memory for every line.

use glmhal_hal::DType;

use super::{isa, Isa};

/// Cached rows of consecutive KV heads: position `j` starts `j·stride`
/// bytes into `bytes` and holds each head's `d` values in `dtype`, one head
/// after the other.
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
    /// Panics unless `len` positions of `heads` heads of `d` values lie
    /// inside the bytes.
    fn check(&self, len: usize, heads: usize, d: usize) {
        assert!(matches!(self.dtype, DType::F32 | DType::F16 | DType::Bf16));
        let row = self.dtype.bytes_for(heads * d);
        assert!(len == 0 || self.bytes.len() >= (len - 1) * self.stride + row);
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

/// Scratch values [`attend`] needs for the scores of `kv_heads` groups of
/// `group` query heads over `len` positions.
pub(crate) fn scores_len(group: usize, kv_heads: usize, len: usize) -> usize {
    kv_heads * group.next_multiple_of(8) * len
}

/// `kv_heads` groups of `group` query heads (`q`, `[kv_heads·group, d]`,
/// already scaled; group `g` attends to KV head `g` of the run) against
/// `len` positions of `keys` and `values`; `scores` is scratch of at
/// least [`scores_len`] values. Only where [`applies`] holds.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    q: &[f32],
    group: usize,
    kv_heads: usize,
    d: usize,
    keys: &PositionRun<'_>,
    values: &PositionRun<'_>,
    len: usize,
    scores: &mut [f32],
    share: RunShare<'_>,
) {
    assert!(applies(d), "attend without AVX-512 or for heads of {d}");
    let heads = kv_heads * group;
    assert!(q.len() >= heads * d && scores.len() >= scores_len(group, kv_heads, len));
    assert!(share.max.len() >= heads && share.sum.len() >= heads && share.out.len() >= heads * d);
    keys.check(len, kv_heads, d);
    values.check(len, kv_heads, d);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512 F and BW, AVX2, FMA and F16C (`applies`
    // checked `isa`); every length the kernels rely on is asserted above.
    unsafe {
        let args = (q, (group, kv_heads), keys, values, len, scores, share);
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
        (usize, usize),
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
    /// Scores are kept position by position (`scores[j·ld + g·gp + h]`,
    /// `gp` the group rounded up to eight, `ld = kv_heads·gp`) so that
    /// eight heads' scores of a position are one vector from the
    /// reduction to the softmax to the weighing.
    ///
    /// # Safety
    /// The CPU has the features enabled here; the arguments passed the
    /// checks of [`super::attend`].
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    pub(super) unsafe fn attend<const D16: usize>(args: Args<'_, '_>) {
        let (q, (group, kv_heads), keys, values, len, scores, share) = args;
        let d = 16 * D16;
        let gp = group.next_multiple_of(8);
        let ld = kv_heads * gp;
        assert!(scores.len() >= ld * len);
        let (kp, vp) = (keys.bytes.as_ptr(), values.bytes.as_ptr());
        let (k_bytes, v_bytes) = (keys.dtype.bytes_for(d), values.dtype.bytes_for(d));
        let (s, qp) = (scores.as_mut_ptr(), q.as_ptr());
        // SAFETY (the loads and stores below): j < len positions of each
        // run, g < kv_heads heads of a position, c < D16 chunks of a head,
        // query heads < kv_heads·group of q and columns < ld of a
        // position's scores (all asserted).
        for j in 0..len {
            request::<_MM_HINT_T1>(vp.wrapping_add(j * values.stride), kv_heads * v_bytes);
            let ahead = kp.wrapping_add((j + KEYS_AHEAD) * keys.stride);
            request::<_MM_HINT_T0>(ahead, kv_heads * k_bytes);
            for g in 0..kv_heads {
                let row = unsafe { kp.add(j * keys.stride + g * k_bytes) };
                let mut k = [_mm512_setzero_ps(); D16];
                for (c, v) in k.iter_mut().enumerate() {
                    *v = unsafe { load16(keys.dtype, row, c) };
                }
                let (at, qg) = unsafe { (s.add(j * ld + g * gp), qp.add(g * group * d)) };
                let mut h0 = 0;
                while h0 + 8 <= group {
                    let mut acc = [_mm512_setzero_ps(); 8];
                    for (h, a) in acc.iter_mut().enumerate() {
                        *a = unsafe { dot(&k, qg.add((h0 + h) * d)) };
                    }
                    unsafe { _mm256_storeu_ps(at.add(h0), sum_each(acc)) };
                    h0 += 8;
                }
                for h in h0..gp {
                    let score = if h < group {
                        _mm512_reduce_add_ps(unsafe { dot(&k, qg.add(h * d)) })
                    } else {
                        0.0 // padding: never weighed
                    };
                    unsafe { *at.add(h) = score };
                }
            }
        }
        // Softmax numerators, eight columns a vector (gp is a multiple of
        // eight, so a vector never straddles two groups).
        for col in (0..ld).step_by(8) {
            let mut max = _mm256_set1_ps(f32::NEG_INFINITY);
            for j in 0..len {
                max = _mm256_max_ps(max, unsafe { _mm256_loadu_ps(s.add(j * ld + col)) });
            }
            let mut sum = _mm256_setzero_ps();
            for j in 0..len {
                unsafe {
                    let at = s.add(j * ld + col);
                    let e = super::super::avx2::exp8(_mm256_sub_ps(_mm256_loadu_ps(at), max));
                    _mm256_storeu_ps(at, e);
                    sum = _mm256_add_ps(sum, e);
                }
            }
            let (mut maxima, mut sums) = ([0.0f32; 8], [0.0f32; 8]);
            unsafe {
                _mm256_storeu_ps(maxima.as_mut_ptr(), max);
                _mm256_storeu_ps(sums.as_mut_ptr(), sum);
            }
            let (g, h0) = (col / gp, col % gp);
            let heads = group.saturating_sub(h0).min(8);
            let first = g * group + h0;
            share.max[first..first + heads].copy_from_slice(&maxima[..heads]);
            share.sum[first..first + heads].copy_from_slice(&sums[..heads]);
        }
        share.out[..kv_heads * group * d].fill(0.0);
        for j0 in (0..len).step_by(SUB_RUN) {
            let rows = SUB_RUN.min(len - j0);
            for g in 0..kv_heads {
                let vs = PositionRun {
                    bytes: &values.bytes[j0 * values.stride + g * v_bytes..],
                    ..*values
                };
                let mut h0 = 0;
                while h0 < group {
                    // Blocks of eight heads, then four, two and one.
                    let block = [8, 4, 2, 1]
                        .into_iter()
                        .find(|b| *b <= group - h0)
                        .unwrap_or(1);
                    let first = g * group + h0;
                    let out = &mut share.out[first * d..(first + block) * d];
                    let weights = &scores[j0 * ld + g * gp + h0..];
                    // SAFETY: as for this function; the block's heads lie
                    // inside `out`, and rows j0..j0 + rows inside `vs` and
                    // `weights`.
                    unsafe {
                        match block {
                            8 => weigh::<D16, 8>(&vs, rows, weights, ld, out),
                            4 => weigh::<D16, 4>(&vs, rows, weights, ld, out),
                            2 => weigh::<D16, 2>(&vs, rows, weights, ld, out),
                            _ => weigh::<D16, 1>(&vs, rows, weights, ld, out),
                        }
                    }
                    h0 += block;
                }
            }
        }
    }

    /// Positions weighed per pass over a head block's dimensions: their
    /// value rows (16 KiB in f32 for heads of 128) stay in L1 while the
    /// block's dimensions are taken 32 at a time.
    const SUB_RUN: usize = 32;

    /// `Σ_c k[c]·q[16c..16c + 16]`, lane by lane.
    ///
    /// # Safety
    /// `q` must point at `16·D16` values.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn dot<const D16: usize>(k: &[__m512; D16], q: *const f32) -> __m512 {
        let mut acc = _mm512_setzero_ps();
        for (c, kc) in k.iter().enumerate() {
            // SAFETY: chunk c < D16 of q (the caller's contract).
            acc = _mm512_fmadd_ps(*kc, unsafe { _mm512_loadu_ps(q.add(16 * c)) }, acc);
        }
        acc
    }

    /// The lane sums of eight vectors, in their order: three levels of
    /// shuffles that add pairs of vectors' halves, then one to line the
    /// eight sums up (24 instructions where eight separate reductions take
    /// about 64).
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    fn sum_each(a: [__m512; 8]) -> __m256 {
        // [x0 x1 y0 y1] + [x2 x3 y2 y3] in 128-bit quarters: each vector's
        // sum is now in two quarters.
        let halves = |x: __m512, y: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(x, y),
                _mm512_shuffle_f32x4::<0xEE>(x, y),
            )
        };
        // [x0 x2 y0 y2] + [x1 x3 y1 y3]: one quarter per vector.
        let quarters = |x: __m512, y: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(x, y),
                _mm512_shuffle_f32x4::<0xDD>(x, y),
            )
        };
        let first = quarters(halves(a[0], a[1]), halves(a[2], a[3]));
        let second = quarters(halves(a[4], a[5]), halves(a[6], a[7]));
        // Quarter i: vector i's two pair sums, then vector 4 + i's.
        let pairs = _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(first, second),
            _mm512_shuffle_ps::<0xEE>(first, second),
        );
        // Quarter i: [sum i, sum i, sum 4 + i, sum 4 + i].
        let sums = _mm512_add_ps(pairs, _mm512_permute_ps::<0xB1>(pairs));
        let order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
        _mm512_castps512_ps256(_mm512_permutexvar_ps(order, sums))
    }

    /// `out[h] += Σ_j w[j·ld + h]·v_j` for `H` heads and `rows` positions
    /// (`out` is `[H, 16·D16]`), 32 dimensions of every head at a time in
    /// registers.
    ///
    /// # Safety
    /// As for [`attend`]; `weights` holds `rows` positions of `ld` and
    /// `out` holds `H` heads.
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn weigh<const D16: usize, const H: usize>(
        values: &PositionRun<'_>,
        rows: usize,
        weights: &[f32],
        ld: usize,
        out: &mut [f32],
    ) {
        let d = 16 * D16;
        assert!(rows == 0 || weights.len() >= (rows - 1) * ld + H);
        assert!(out.len() >= H * d);
        let (vp, wp, op) = (values.bytes.as_ptr(), weights.as_ptr(), out.as_mut_ptr());
        for c0 in (0..D16).step_by(2) {
            let pair = c0 + 1 < D16;
            let mut acc = [[_mm512_setzero_ps(); 2]; H];
            // SAFETY: chunks c0 (and c0 + 1 when `pair`) of head h < H lie
            // inside `out`; row j < rows and those chunks inside the run;
            // weights[j·ld + h] inside `weights`.
            unsafe {
                for (h, a) in acc.iter_mut().enumerate() {
                    let o = op.add(h * d + 16 * c0);
                    a[0] = _mm512_loadu_ps(o);
                    if pair {
                        a[1] = _mm512_loadu_ps(o.add(16));
                    }
                }
                for j in 0..rows {
                    let row = vp.add(j * values.stride);
                    let v0 = load16(values.dtype, row, c0);
                    let v1 = if pair {
                        load16(values.dtype, row, c0 + 1)
                    } else {
                        _mm512_setzero_ps()
                    };
                    for (h, a) in acc.iter_mut().enumerate() {
                        let p = _mm512_set1_ps(*wp.add(j * ld + h));
                        a[0] = _mm512_fmadd_ps(p, v0, a[0]);
                        a[1] = _mm512_fmadd_ps(p, v1, a[1]);
                    }
                }
                for (h, a) in acc.iter().enumerate() {
                    let o = op.add(h * d + 16 * c0);
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
        // A cache of two KV heads per position, as the model stores it.
        let heads = 2;
        for d in [16usize, 32, 64, 128, 256] {
            for group in [1usize, 2, 3, 7, 8, 13, 16] {
                for len in [1usize, 5, 16, 37, 256] {
                    let q: Vec<f32> = (0..heads * group * d)
                        .map(|_| rng.uniform(-1.0, 1.0))
                        .collect();
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
                        let own = |all: &[f32], head: usize| -> Vec<f32> {
                            (0..len)
                                .flat_map(|j| all[(j * heads + head) * d..][..d].to_vec())
                                .collect()
                        };
                        // Both heads in one run, then the second alone
                        // (its rows between the first's).
                        for (first, kv_heads) in [(0, heads), (1, 1)] {
                            let n = kv_heads * group;
                            let offset = dtype.bytes_for(first * d);
                            let stride = dtype.bytes_for(heads * d);
                            let run = |bytes| PositionRun {
                                dtype,
                                bytes,
                                stride,
                            };
                            let (keys, values) =
                                (run(&stored_k[offset..]), run(&stored_v[offset..]));
                            let mut scores = vec![f32::NAN; scores_len(group, kv_heads, len)];
                            let (mut max, mut sum) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                            let mut out = vec![f32::NAN; n * d];
                            let share = RunShare {
                                max: &mut max,
                                sum: &mut sum,
                                out: &mut out,
                            };
                            let qs = &q[first * group * d..];
                            attend(
                                qs,
                                group,
                                kv_heads,
                                d,
                                &keys,
                                &values,
                                len,
                                &mut scores,
                                share,
                            );
                            let close = |got: f32, want: f64| {
                                (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs())
                            };
                            for g in 0..kv_heads {
                                let rows = (&own(&rk, first + g)[..], &own(&rv, first + g)[..]);
                                let (want_max, want_sum, want_out) =
                                    expected(&qs[g * group * d..], group, d, rows, len);
                                let at = format!(
                                    "{dtype} d={d} group={group} len={len} head {} of {kv_heads}",
                                    first + g
                                );
                                for h in 0..group {
                                    assert!(
                                        close(max[g * group + h], want_max[h]),
                                        "{at} max[{h}]"
                                    );
                                    assert!(
                                        close(sum[g * group + h], want_sum[h]),
                                        "{at} sum[{h}]"
                                    );
                                }
                                let got = &out[g * group * d..(g + 1) * group * d];
                                for (i, (got, want)) in got.iter().zip(&want_out).enumerate() {
                                    assert!(close(*got, *want), "{at} out[{i}]: {got} vs {want}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
