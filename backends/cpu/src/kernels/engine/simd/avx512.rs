//! The quantized matrix-vector products with 512-bit registers and the
//! activations' quantization. With int8 activations: a row alone in
//! its tile (decode) 64 weight bytes per `vpdpbusd` (two for Q4_0) and
//! one FMA, laid out in step with the weights (`rows_alone`); several
//! rows, Q4_0 sixteen blocks per eight `vpdpbusd` and one FMA
//! (`rows_q4_int8`), Q8_0 one `vpdpbusd` per pair of blocks
//! (`rows_pairs`). With int16: Q8_0 one
//! `madd` per block and activation row where AVX2 needs two and an
//! add (`rows`), Q4_0 two `vpdpbusd` per pair of blocks (`rows_pairs`);
//! sixteen blocks' scales per vector throughout. Every function needs
//! AVX-512 F and BW (the VNNI products VL and VNNI too) besides AVX2,
//! FMA and F16C (the caller checked `isa()`) and reads only inside the
//! slices it is given.

use std::arch::x86_64::*;

use glmhal_hal::{DType, QUANT_BLOCK};

use super::avx2::prefetch_ahead;
use super::int8::{scale_words, WeightLayout, Q4_0_PERIOD, Q8_0_PERIOD, VECTOR};
use super::{QuantizedOperands, QuantizedRow, WeightRows, PAIR_PLANE_BYTES};

/// The int16 Q4_0 VNNI product's weight requests: 8 KiB ahead with the
/// non-temporal hint. On AMD Zen 5 that decoded Q4_0 a few per cent
/// faster than the ordinary hint (five alternating runs: median 61.6
/// vs 57.4 tok/s); on AMD Zen 4, where this kernel runs at the pace of
/// its instructions, not of memory, `avx2::prefetch_ahead` was no
/// faster (24.7–28.7 against 24.6–35.4 tok/s). The other AVX-512
/// products use `avx2::prefetch_ahead`.
#[target_feature(enable = "avx2")]
fn prefetch_ahead_nta(p: *const u8) {
    const NTA_AHEAD: usize = 8 << 10;
    _mm_prefetch::<_MM_HINT_NTA>(p.wrapping_add(NTA_AHEAD).cast());
}

/// Blocks whose scales are converted and multiplied together.
const GROUP: usize = 16;

/// A block's 32 weights as 32 int16 in element order: Q4_0 nibbles as
/// stored (0..=15, not yet offset by −8), Q8_0 bytes sign-extended.
///
/// # Safety
/// `block` must point at a whole block of the dtype.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn weights32<const Q4: bool>(block: *const u8) -> __m512i {
    // SAFETY: the caller passes a whole 18-byte (Q4_0) or 34-byte (Q8_0) block.
    unsafe {
        if Q4 {
            let q = _mm_loadu_si128(block.add(2).cast());
            let low = _mm_set1_epi8(0x0f);
            let both = _mm256_set_m128i(
                _mm_and_si128(_mm_srli_epi16(q, 4), low),
                _mm_and_si128(q, low),
            );
            _mm512_cvtepu8_epi16(both)
        } else {
            _mm512_cvtepi8_epi16(_mm256_loadu_si256(block.add(2).cast()))
        }
    }
}

/// `R` quantized activation rows against one Q8_0 (`Q4 = false`) or
/// Q4_0 row, as `avx2::rows_quantized` computes them: per block one
/// `madd` of 32 int16 pairs per row, a conversion and an FMA with the
/// block's two scales (lane `i` of its group's scales, moved to every
/// lane by one permutation); Q4_0's −8 offset comes back through the
/// rows' `−8·Σq`, sixteen blocks per FMA.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[inline]
unsafe fn rows<const Q4: bool, const R: usize>(w: &[u8], xs: &[&QuantizedRow], out: &mut [f32]) {
    let operands = QuantizedOperands::<R>::new(Q4, false, w, xs, out);
    let QuantizedOperands {
        blocks,
        block_bytes: bb,
        values,
        scales,
        offsets,
        ..
    } = operands;
    // Even and odd blocks in separate accumulators so consecutive FMAs
    // do not wait on each other; Q4_0's scaled offsets in a third.
    let mut even = [_mm512_setzero_ps(); R];
    let mut odd = [_mm512_setzero_ps(); R];
    let mut offset = [_mm512_setzero_ps(); R];
    // Block b's integer products, one f32 vector (16 lanes to be summed) per row.
    macro_rules! products {
        ($b:expr) => {{
            let b = $b;
            // SAFETY: b < blocks, so block b lies inside `w` and every
            // activation row's arrays (asserted above).
            unsafe {
                let wv = weights32::<Q4>(w.as_ptr().add(b * bb));
                let products: [__m512; R] = std::array::from_fn(|r| {
                    let x = _mm512_loadu_si512(values[r].add(b * QUANT_BLOCK).cast());
                    _mm512_cvtepi32_ps(_mm512_madd_epi16(wv, x))
                });
                products
            }
        }};
    }
    let mut b = 0;
    while b + GROUP <= blocks {
        let group = w.as_ptr().wrapping_add(b * bb);
        for line in (0..GROUP * bb).step_by(64) {
            prefetch_ahead(group.wrapping_add(line));
        }
        // SAFETY: blocks b..b + 16 lie inside `w` and the rows' scales
        // and offsets (asserted).
        let k: [__m512; R] = unsafe {
            let bits: [u16; GROUP] =
                std::array::from_fn(|i| group.add(i * bb).cast::<u16>().read_unaligned());
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(bits.as_ptr().cast()));
            std::array::from_fn(|r| _mm512_mul_ps(dw, _mm512_loadu_ps(scales[r].add(b))))
        };
        if Q4 {
            for r in 0..R {
                // SAFETY: as for the scales.
                let o = unsafe { _mm512_loadu_ps(offsets[r].add(b)) };
                offset[r] = _mm512_fmadd_ps(k[r], o, offset[r]);
            }
        }
        // Blocks b + i and b + i + 1, spelled out for every pair so the
        // lane indices are constants.
        macro_rules! pair {
            ($i:literal) => {{
                let (p0, p1) = (products!(b + $i), products!(b + $i + 1));
                let (l0, l1) = (_mm512_set1_epi32($i), _mm512_set1_epi32($i + 1));
                for r in 0..R {
                    even[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(l0, k[r]), p0[r], even[r]);
                    odd[r] = _mm512_fmadd_ps(_mm512_permutexvar_ps(l1, k[r]), p1[r], odd[r]);
                }
            }};
        }
        pair!(0);
        pair!(2);
        pair!(4);
        pair!(6);
        pair!(8);
        pair!(10);
        pair!(12);
        pair!(14);
        b += GROUP;
    }
    // SAFETY: `operands` were checked against `w` and the rows.
    unsafe { single_blocks::<Q4, R>(w, &operands, b, &mut even) };
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(even[r], odd[r]), offset[r]));
    }
}

/// Adds blocks `from..` of the product, one at a time (the tail past
/// the last group of sixteen), into `sums`: per block one `madd` per
/// row, its scales broadcast from scalars, Q4_0's offset added in.
///
/// # Safety
/// `operands` must have been made from `w` and the same rows.
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn single_blocks<const Q4: bool, const R: usize>(
    w: &[u8],
    operands: &QuantizedOperands<R>,
    from: usize,
    sums: &mut [__m512; R],
) {
    let QuantizedOperands {
        blocks,
        block_bytes: bb,
        values,
        scales,
        offsets,
        ..
    } = *operands;
    for b in from..blocks {
        // SAFETY: b < blocks, so block b lies inside `w` and every
        // activation row's arrays (checked when `operands` were made).
        unsafe {
            let block = w.as_ptr().add(b * bb);
            let wv = weights32::<Q4>(block);
            let d = half::f16::from_bits(block.cast::<u16>().read_unaligned()).to_f32();
            for r in 0..R {
                let x = _mm512_loadu_si512(values[r].add(b * QUANT_BLOCK).cast());
                let mut product = _mm512_cvtepi32_ps(_mm512_madd_epi16(wv, x));
                if Q4 {
                    // A sixteenth of the offset in each of the sixteen lanes (exact).
                    let o = _mm512_set1_ps(0.0625 * *offsets[r].add(b));
                    product = _mm512_add_ps(product, o);
                }
                let k = _mm512_set1_ps(d * *scales[r].add(b));
                sums[r] = _mm512_fmadd_ps(k, product, sums[r]);
            }
        }
    }
}

/// `super::quantize_blocks` sixteen lanes at a time, with the same
/// values bit for bit: the same f32 operations, rounding half away from
/// zero from the truncated value and the exact remainder, the same
/// clamp, and a block with a NaN or an infinity (a lane not below +∞
/// in magnitude) set to zeros with a NaN scale.
///
/// # Safety
/// The CPU must have AVX-512 F and BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn quantize_blocks<T: super::QuantValue>(
    x: &[f32],
    values: &mut [T],
    scales: &mut [f32],
    sums: &mut [f32],
) {
    let blocks = x.len() / QUANT_BLOCK;
    assert!(values.len() >= blocks * QUANT_BLOCK);
    assert!(scales.len() >= blocks && sums.len() >= blocks);
    let bytes = std::mem::size_of::<T>();
    assert!(bytes == 1 || bytes == 2);
    let sign = _mm512_set1_ps(-0.0);
    let (one, half) = (_mm512_set1_ps(1.0), _mm512_set1_ps(0.5));
    let (low, high) = (_mm512_set1_ps(-T::MAX), _mm512_set1_ps(T::MAX));
    let infinity = _mm512_set1_ps(f32::INFINITY);
    for (((block, q), s), sum) in x
        .chunks_exact(QUANT_BLOCK)
        .zip(values.chunks_exact_mut(QUANT_BLOCK))
        .zip(scales.iter_mut())
        .zip(sums.iter_mut())
    {
        // SAFETY: `block` holds 32 f32 and `q` 32 values of `bytes` bytes.
        unsafe {
            let v = [
                _mm512_loadu_ps(block.as_ptr()),
                _mm512_loadu_ps(block.as_ptr().add(16)),
            ];
            let a = [_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])];
            let finite = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a[0], infinity)
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a[1], infinity);
            if finite != 0xffff {
                q.fill(T::default());
                (*s, *sum) = (f32::NAN, 0.0);
                continue;
            }
            let d = _mm512_reduce_max_ps(_mm512_max_ps(a[0], a[1])) / T::MAX;
            let id = _mm512_set1_ps(if d > 0.0 { 1.0 / d } else { 0.0 });
            let mut total = _mm512_setzero_si512();
            for (h, v) in v.into_iter().enumerate() {
                let y = _mm512_mul_ps(v, id);
                let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
                let away =
                    _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(_mm512_sub_ps(y, t)), half);
                let step = _mm512_or_ps(one, _mm512_and_ps(y, sign));
                let r = _mm512_mask_add_ps(t, away, t, step);
                // NaN (0·∞ when 1/d overflows) to 0, as `as` casts do.
                let r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(y, y), r);
                let r = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, low), high));
                total = _mm512_add_epi32(total, r);
                let at = q.as_mut_ptr().add(16 * h);
                if bytes == 1 {
                    _mm_storeu_si128(at.cast(), _mm512_cvtepi32_epi8(r));
                } else {
                    _mm256_storeu_si256(at.cast(), _mm512_cvtepi32_epi16(r));
                }
            }
            *s = d;
            *sum = _mm512_reduce_add_epi32(total) as f32;
        }
    }
}

/// Splits int16 `values` into the byte planes `rows_pairs` reads: per
/// pair of blocks A, B, the high bytes (`q >> 8`, signed) of
/// A[0..16], B[0..16], A[16..32], B[16..32], then their low bytes
/// (`q & 255`, unsigned) in the same order, so `q = 256·high + low`.
/// That is the order in which one 32-byte load of the two blocks'
/// nibbles unpacks (low nibbles, then high nibbles, of each 16 bytes).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
pub(crate) unsafe fn byte_planes(values: &[i16], planes: &mut [u8]) {
    let pairs = values.len() / (2 * QUANT_BLOCK);
    assert!(planes.len() >= pairs * PAIR_PLANE_BYTES);
    for (pair, plane) in values
        .chunks_exact(2 * QUANT_BLOCK)
        .zip(planes.chunks_exact_mut(PAIR_PLANE_BYTES))
    {
        // SAFETY: `pair` holds 64 int16 and `plane` 128 bytes.
        unsafe {
            let a = _mm512_loadu_si512(pair.as_ptr().cast());
            let b = _mm512_loadu_si512(pair.as_ptr().add(QUANT_BLOCK).cast());
            let (a_hi, b_hi) = (
                _mm512_cvtepi16_epi8(_mm512_srai_epi16::<8>(a)),
                _mm512_cvtepi16_epi8(_mm512_srai_epi16::<8>(b)),
            );
            let (a_lo, b_lo) = (_mm512_cvtepi16_epi8(a), _mm512_cvtepi16_epi8(b));
            let out = plane.as_mut_ptr();
            let halves = [
                _mm256_permute2x128_si256::<0x20>(a_hi, b_hi),
                _mm256_permute2x128_si256::<0x31>(a_hi, b_hi),
                _mm256_permute2x128_si256::<0x20>(a_lo, b_lo),
                _mm256_permute2x128_si256::<0x31>(a_lo, b_lo),
            ];
            for (i, h) in halves.into_iter().enumerate() {
                _mm256_storeu_si256(out.add(32 * i).cast(), h);
            }
        }
    }
}

/// `R` activation rows against one row of weights with VNNI, two
/// blocks per 512-bit vector: int16 rows of Q4_0 (`Q4`, their
/// `byte_planes`) or int8 rows of Q8_0 (`I8`).
///
/// The pair's weights become 64 unsigned bytes: Q4_0's two blocks' 32
/// nibble bytes unpack to their nibbles as stored (low nibbles, then
/// high, of each block: the order of `byte_planes`), Q8_0's 64 bytes
/// are offset by 128 (`xor`). One
/// `vpdpbusd` takes their products with int8 activations; int16
/// activations take two, with their high bytes (shifted by 8) and low
/// bytes. Each is exact in int32, as `madd` is; the weights' bias (8 or
/// 128) comes back through the rows' `−c·Σq`, sixteen blocks per FMA.
/// The lanes of each block (four per 128-bit half for Q4_0, eight for
/// Q8_0) are then converted and scaled (sixteen blocks' scales per
/// vector, as in `rows`). Same results as `rows` up to the order of
/// the f32 sums (int16) or the int8 product of the portable path.
///
/// Its helpers are `#[inline(always)]` without `#[target_feature]` (Rust
/// does not accept both): inlined here, they compile with these features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn rows_pairs<const Q4: bool, const I8: bool, const R: usize>(
    w: &[u8],
    xs: &[&QuantizedRow],
    out: &mut [f32],
) {
    debug_assert!(Q4 != I8);
    let operands = QuantizedOperands::<R>::new(Q4, I8, w, xs, out);
    let QuantizedOperands {
        blocks,
        block_bytes: bb,
        bytes,
        scales,
        offsets,
        ..
    } = operands;
    let grouped = blocks - blocks % GROUP;
    assert!(
        I8 || xs
            .iter()
            .all(|x| x.byte_planes.len() >= grouped / 2 * PAIR_PLANE_BYTES)
    );
    let planes: [*const u8; R] = std::array::from_fn(|r| xs[r].byte_planes.as_ptr());
    let mut even = [_mm512_setzero_ps(); R];
    let mut odd = [_mm512_setzero_ps(); R];
    let mut offset = [_mm512_setzero_ps(); R];
    let mut b = 0;
    while b < grouped {
        let group = w.as_ptr().wrapping_add(b * bb);
        // SAFETY: the caller checked the CPU features.
        unsafe { prefetch_group::<Q4>(group, bb) };
        // SAFETY: blocks b..b + 16 lie inside `w` and the rows' scales
        // and offsets (asserted).
        let k = unsafe { group_scales::<R>(group, bb, &scales, b) };
        for r in 0..R {
            // SAFETY: as for the scales.
            let o = unsafe { _mm512_loadu_ps(offsets[r].add(b)) };
            offset[r] = _mm512_fmadd_ps(k[r], o, offset[r]);
        }
        // SAFETY: the group's blocks lie inside `w`, its activations
        // inside every row's (asserted).
        unsafe {
            pair::<Q4, I8, R, 0>(group, bb, b, &k, &bytes, &planes, &mut even);
            pair::<Q4, I8, R, 1>(group, bb, b, &k, &bytes, &planes, &mut odd);
            pair::<Q4, I8, R, 2>(group, bb, b, &k, &bytes, &planes, &mut even);
            pair::<Q4, I8, R, 3>(group, bb, b, &k, &bytes, &planes, &mut odd);
            pair::<Q4, I8, R, 4>(group, bb, b, &k, &bytes, &planes, &mut even);
            pair::<Q4, I8, R, 5>(group, bb, b, &k, &bytes, &planes, &mut odd);
            pair::<Q4, I8, R, 6>(group, bb, b, &k, &bytes, &planes, &mut even);
            pair::<Q4, I8, R, 7>(group, bb, b, &k, &bytes, &planes, &mut odd);
        }
        b += GROUP;
    }
    let tail = if I8 {
        // SAFETY: `operands` were checked against `w` and the rows.
        unsafe { int8_blocks::<Q4, R>(w, &operands, b) }
    } else {
        // SAFETY: as above.
        unsafe { single_blocks::<true, R>(w, &operands, b, &mut even) };
        [0.0; R]
    };
    for r in 0..R {
        let sums = _mm512_add_ps(_mm512_add_ps(even[r], odd[r]), offset[r]);
        out[r] = _mm512_reduce_add_ps(sums) + tail[r];
    }
}

/// Requests a group of sixteen blocks' weights ahead of `rows_pairs`,
/// with the non-temporal hint for Q4_0 (see `prefetch_ahead_nta`).
///
/// # Safety
/// The CPU must have AVX2.
#[inline(always)]
unsafe fn prefetch_group<const Q4: bool>(group: *const u8, bb: usize) {
    for line in (0..GROUP * bb).step_by(64) {
        // SAFETY: the caller checked the CPU features; a prefetch reads
        // nothing.
        unsafe {
            if Q4 {
                prefetch_ahead_nta(group.wrapping_add(line));
            } else {
                prefetch_ahead(group.wrapping_add(line));
            }
        }
    }
}

/// The sixteen blocks' weight scales at `group` times each row's
/// activation scales of blocks `b..b + 16`, one vector per row.
/// Sixteen scalar loads: a `vpgatherdd` here made the whole product a
/// third slower on AMD Zen 5.
///
/// # Safety
/// The CPU must have AVX-512 F and F16C; the group's sixteen blocks of
/// `bb` bytes must lie at `group`, and blocks `b..b + 16` inside every
/// row's scales.
#[inline(always)]
unsafe fn group_scales<const R: usize>(
    group: *const u8,
    bb: usize,
    scales: &[*const f32; R],
    b: usize,
) -> [__m512; R] {
    // SAFETY: as the caller promised.
    unsafe {
        let bits: [u16; GROUP] =
            std::array::from_fn(|i| group.add(i * bb).cast::<u16>().read_unaligned());
        let dw = _mm512_cvtph_ps(_mm256_loadu_si256(bits.as_ptr().cast()));
        std::array::from_fn(|r| _mm512_mul_ps(dw, _mm512_loadu_ps(scales[r].add(b))))
    }
}

/// Pair `P` of the group at `group` (blocks `b + 2P` and `b + 2P + 1`)
/// into `sums`, as `rows_pairs` describes: the pair's weights as 64
/// unsigned bytes, one or two `vpdpbusd` per row, and one FMA with the
/// blocks' scales (lanes `2P` and `2P + 1` of `k`) moved to their
/// blocks' lanes (Q4_0: 0–3, 8–11 and 4–7, 12–15; Q8_0: 0–7 and 8–15)
/// by a constant permutation.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI; the pair's blocks must
/// lie inside the weights at `group`, and its activations inside every
/// row's `bytes` (`I8`) or `planes`.
#[inline(always)]
unsafe fn pair<const Q4: bool, const I8: bool, const R: usize, const P: i32>(
    group: *const u8,
    bb: usize,
    b: usize,
    k: &[__m512; R],
    bytes: &[*const i8; R],
    planes: &[*const u8; R],
    sums: &mut [__m512; R],
) {
    let (l0, l1) = (P * 2, P * 2 + 1);
    let p = P as usize;
    // SAFETY: as the caller promised.
    unsafe {
        let lanes = if Q4 {
            _mm512_setr_epi32(
                l0, l0, l0, l0, l1, l1, l1, l1, l0, l0, l0, l0, l1, l1, l1, l1,
            )
        } else {
            _mm512_setr_epi32(
                l0, l0, l0, l0, l0, l0, l0, l0, l1, l1, l1, l1, l1, l1, l1, l1,
            )
        };
        let wv = pair_weights::<Q4>(group.add(2 * p * bb + 2), bb);
        for r in 0..R {
            let sum = if I8 {
                let at = (b + 2 * p) * QUANT_BLOCK;
                let x = _mm512_loadu_si512(bytes[r].add(at).cast());
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, x)
            } else {
                let at = (b / 2 + p) * PAIR_PLANE_BYTES;
                let high = _mm512_loadu_si512(planes[r].add(at).cast());
                let low = _mm512_loadu_si512(planes[r].add(at + 64).cast());
                let sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, high);
                _mm512_dpbusd_epi32(_mm512_slli_epi32::<8>(sum), low, wv)
            };
            let kk = _mm512_permutexvar_ps(lanes, k[r]);
            sums[r] = _mm512_fmadd_ps(kk, _mm512_cvtepi32_ps(sum), sums[r]);
        }
    }
}

/// Two consecutive blocks' weights, whose quants start at `first`, as
/// 64 unsigned bytes: Q4_0's nibbles as stored (low, then high, of each
/// block), Q8_0's bytes offset by 128.
///
/// # Safety
/// The CPU must have AVX-512 F and BW; both blocks' quants (`bb` bytes
/// apart) must be readable.
#[inline(always)]
unsafe fn pair_weights<const Q4: bool>(first: *const u8, bb: usize) -> __m512i {
    // SAFETY: as the caller promised.
    unsafe {
        if Q4 {
            let q = _mm256_inserti128_si256::<1>(
                _mm256_castsi128_si256(_mm_loadu_si128(first.cast())),
                _mm_loadu_si128(first.add(bb).cast()),
            );
            _mm512_and_si512(
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q), _mm256_srli_epi16::<4>(q)),
                _mm512_set1_epi8(0x0f),
            )
        } else {
            _mm512_xor_si512(
                _mm512_inserti64x4::<1>(
                    _mm512_castsi256_si512(_mm256_loadu_si256(first.cast())),
                    _mm256_loadu_si256(first.add(bb).cast()),
                ),
                _mm512_set1_epi8(-128),
            )
        }
    }
}

/// Blocks `from..` of an int8 product (the tail past the last group of
/// sixteen, in element order), one at a time: per block one 256-bit
/// `vpdpbusd` per row on its two halves, its sum and bias term finished
/// in scalars.
///
/// # Safety
/// `operands` must have been made from `w` and the same int8 rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn int8_blocks<const Q4: bool, const R: usize>(
    w: &[u8],
    operands: &QuantizedOperands<R>,
    from: usize,
) -> [f32; R] {
    let QuantizedOperands {
        blocks,
        block_bytes: bb,
        bytes,
        scales,
        offsets,
        ..
    } = *operands;
    let dtype = if Q4 { DType::Q4_0 } else { DType::Q8_0 };
    let mut sums = [0.0f32; R];
    for b in from..blocks {
        let lo = super::int8::position(dtype, b, 0, blocks);
        let hi = super::int8::position(dtype, b, QUANT_BLOCK / 2, blocks);
        // SAFETY: b < blocks, so block b lies inside `w` and its
        // halves inside every row's bytes (checked when `operands`
        // were made).
        unsafe {
            let block = w.as_ptr().add(b * bb);
            let wv = if Q4 {
                let q = _mm_loadu_si128(block.add(2).cast());
                let low = _mm_set1_epi8(0x0f);
                _mm256_set_m128i(
                    _mm_and_si128(_mm_srli_epi16(q, 4), low),
                    _mm_and_si128(q, low),
                )
            } else {
                _mm256_xor_si256(
                    _mm256_loadu_si256(block.add(2).cast()),
                    _mm256_set1_epi8(-128),
                )
            };
            let d = half::f16::from_bits(block.cast::<u16>().read_unaligned()).to_f32();
            for r in 0..R {
                let x = _mm256_set_m128i(
                    _mm_loadu_si128(bytes[r].add(hi).cast()),
                    _mm_loadu_si128(bytes[r].add(lo).cast()),
                );
                let dot = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, x);
                let dot = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(dot));
                sums[r] += d * *scales[r].add(b) * (dot as f32 + *offsets[r].add(b));
            }
        }
    }
    sums
}

/// The int8 products: [`rows_pairs`] for Q8_0, [`rows_q4_int8`] for Q4_0.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn rows_int8<const Q4: bool, const R: usize>(
    w: &[u8],
    xs: &[&QuantizedRow],
    out: &mut [f32],
) {
    // SAFETY: the caller checked the CPU features.
    unsafe {
        if Q4 {
            rows_q4_int8::<R>(w, xs, out)
        } else {
            rows_pairs::<false, true, R>(w, xs, out)
        }
    }
}

/// `R` int8 activation rows against one Q4_0 row with VNNI, sixteen
/// blocks at a time in the transposed order of `super::int8`: the
/// group's nibble bytes are loaded as four vectors of four blocks
/// (one per 128-bit lane), their 32-bit words transposed within each
/// lane (eight unpacks), and the low and high nibbles of the four
/// results multiplied with the group's eight activation vectors by
/// eight `vpdpbusd` into two accumulators, whose lane `l` then holds
/// block `SIGMA[l]`'s whole integer dot product. One conversion, the
/// nibbles' −8 offset (the rows' `−8·Σq`) and one FMA with the sixteen
/// blocks' scales finish a group, where the paired product needs those
/// per pair of blocks.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn rows_q4_int8<const R: usize>(w: &[u8], xs: &[&QuantizedRow], out: &mut [f32]) {
    use super::int8::SIGMA;
    let operands = QuantizedOperands::<R>::new(true, true, w, xs, out);
    let QuantizedOperands {
        blocks,
        block_bytes: bb,
        bytes,
        scales,
        offsets,
        ..
    } = operands;
    let grouped = blocks - blocks % GROUP;
    let sigma = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let nibbles = _mm512_set1_epi8(0x0f);
    let mut sums = [_mm512_setzero_ps(); R];
    let mut b = 0;
    while b < grouped {
        let group = w.as_ptr().wrapping_add(b * bb);
        // Into L2 (in alternating decode runs on AMD Zen 4, 30.9–34.3
        // tok/s for requests 8 KiB ahead and 31.1–34.2 for 32 KiB, against
        // 23.4–29.7 with the non-temporal requests of the int16 product).
        for line in (0..GROUP * bb).step_by(64) {
            prefetch_ahead(group.wrapping_add(line));
        }
        // SAFETY: blocks b..b + 16 lie inside `w`, and the rows' scales,
        // offsets and 512 bytes from 32·b inside theirs (asserted).
        unsafe {
            let bits: [u16; GROUP] =
                std::array::from_fn(|l| group.add(SIGMA[l] * bb).cast::<u16>().read_unaligned());
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(bits.as_ptr().cast()));
            // Vector v: blocks 4v..4v + 4 in its four 128-bit lanes.
            let z: [__m512i; 4] = std::array::from_fn(|v| {
                let p = group.add(4 * v * bb + 2);
                let z = _mm512_castsi128_si512(_mm_loadu_si128(p.cast()));
                let z = _mm512_inserti32x4::<1>(z, _mm_loadu_si128(p.add(bb).cast()));
                let z = _mm512_inserti32x4::<2>(z, _mm_loadu_si128(p.add(2 * bb).cast()));
                _mm512_inserti32x4::<3>(z, _mm_loadu_si128(p.add(3 * bb).cast()))
            });
            let (a, c) = (
                _mm512_unpacklo_epi32(z[0], z[1]),
                _mm512_unpacklo_epi32(z[2], z[3]),
            );
            let (e, f) = (
                _mm512_unpackhi_epi32(z[0], z[1]),
                _mm512_unpackhi_epi32(z[2], z[3]),
            );
            // Word l of t[i]: bytes 4i..4i + 4 of block SIGMA[l].
            let t = [
                _mm512_unpacklo_epi64(a, c),
                _mm512_unpackhi_epi64(a, c),
                _mm512_unpacklo_epi64(e, f),
                _mm512_unpackhi_epi64(e, f),
            ];
            let low: [__m512i; 4] = std::array::from_fn(|i| _mm512_and_si512(t[i], nibbles));
            let high: [__m512i; 4] =
                std::array::from_fn(|i| _mm512_and_si512(_mm512_srli_epi16::<4>(t[i]), nibbles));
            for r in 0..R {
                let x = bytes[r].add(b * QUANT_BLOCK);
                let mut lo = _mm512_setzero_si512();
                let mut hi = _mm512_setzero_si512();
                for i in 0..4 {
                    let xl = _mm512_loadu_si512(x.add(128 * i).cast());
                    let xh = _mm512_loadu_si512(x.add(128 * i + 64).cast());
                    lo = _mm512_dpbusd_epi32(lo, low[i], xl);
                    hi = _mm512_dpbusd_epi32(hi, high[i], xh);
                }
                let k = _mm512_mul_ps(
                    dw,
                    _mm512_permutexvar_ps(sigma, _mm512_loadu_ps(scales[r].add(b))),
                );
                let o = _mm512_permutexvar_ps(sigma, _mm512_loadu_ps(offsets[r].add(b)));
                let dot = _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo, hi)), o);
                sums[r] = _mm512_fmadd_ps(k, dot, sums[r]);
            }
        }
        b += GROUP;
    }
    // SAFETY: `operands` were checked against `w` and the rows.
    let tail = unsafe { int8_blocks::<true, R>(w, &operands, b) };
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(sums[r]) + tail[r];
    }
}

/// Per place in its period, the `vpermt2w` indices that take each
/// lane's block scale from the previous and this chunk of a Q4_0 row
/// (see `super::int8::scale_words`).
static Q4_0_SCALE_WORDS: [[u16; 32]; Q4_0_PERIOD] = scale_words::<Q4_0_PERIOD>(18);
/// The same for Q8_0 rows.
static Q8_0_SCALE_WORDS: [[u16; 32]; Q8_0_PERIOD] = scale_words::<Q8_0_PERIOD>(34);

/// `R` int8 activation rows laid out in step with the weights
/// ([`WeightLayout`]; called with one, as rows are laid out so only
/// when alone in their tile) against one Q4_0 (`Q4`) or Q8_0 row with VNNI, 64
/// weight bytes at a time as loaded, scales included. Q4_0's bytes
/// split into their low and high nibbles (0–15: the −8 comes back
/// through the rows' lane offsets); Q8_0's are offset by 128 (`xor`,
/// back through the offsets too). One `vpdpbusd` per plane, started
/// from the lane offsets, leaves each lane with an exact integer sum
/// over values of one block, which one FMA scales by that block's
/// weight scale (sixteen half-precision words gathered by one
/// `vpermt2w` from this and the previous chunk) times the row's lane
/// scale. The last chunk's load is masked to the row: the weights past
/// it read as zeros, and so do their scales. About ten instructions
/// per 64 bytes (3.6 Q4_0 or 1.9 Q8_0 blocks), where gathering each
/// block's bytes and scale on its own takes a shuffle or an insert per
/// 128-bit block and a scalar load per scale.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn rows_alone<const Q4: bool, const R: usize>(
    w: &[u8],
    xs: &[&QuantizedRow],
    out: &mut [f32],
) {
    let dtype = if Q4 { DType::Q4_0 } else { DType::Q8_0 };
    let layout = WeightLayout::new(dtype, xs[0].scales.len());
    let lanes = layout.lanes();
    assert!(
        xs.len() == R
            && out.len() >= R
            && w.len() >= layout.row_bytes
            && xs
                .iter()
                .all(|x| x.bytes.len() >= layout.planes * layout.plane_bytes
                    && x.lane_offsets.len() >= lanes
                    && x.lane_scales.len() >= lanes)
    );
    let bytes: [*const i8; R] = std::array::from_fn(|r| xs[r].bytes.as_ptr());
    let offsets: [*const i32; R] = std::array::from_fn(|r| xs[r].lane_offsets.as_ptr());
    let lane_scales: [*const f32; R] = std::array::from_fn(|r| xs[r].lane_scales.as_ptr());
    let words: &[[u16; 32]] = if Q4 {
        &Q4_0_SCALE_WORDS
    } else {
        &Q8_0_SCALE_WORDS
    };
    let nibbles = _mm512_set1_epi8(0x0f);
    let bias = _mm512_set1_epi8(-128);
    let mut sums = [_mm512_setzero_ps(); R];
    let mut previous = _mm512_setzero_si512();
    // Chunk `chunk` of the row, at place `phase` of its period.
    let mut step = |chunk: usize, phase: usize, whole: bool| {
        let at = chunk * VECTOR;
        let lane = chunk * (VECTOR / 4);
        // SAFETY: the load is masked to the row's bytes inside `w`
        // unless the chunk is whole; the activation bytes and lanes lie
        // inside every row's (asserted).
        unsafe {
            let p = w.as_ptr().add(at);
            prefetch_ahead(p);
            let wv = if whole {
                _mm512_loadu_si512(p.cast())
            } else {
                let left = (layout.row_bytes - at).min(VECTOR);
                _mm512_maskz_loadu_epi8(u64::MAX >> (VECTOR - left), p.cast())
            };
            let index = _mm512_loadu_si512(words[phase].as_ptr().cast());
            let halves = _mm512_permutex2var_epi16(previous, index, wv);
            let dw = _mm512_cvtph_ps(_mm512_castsi512_si256(halves));
            let (low, high) = if Q4 {
                (
                    _mm512_and_si512(wv, nibbles),
                    _mm512_and_si512(_mm512_srli_epi16::<4>(wv), nibbles),
                )
            } else {
                (_mm512_xor_si512(wv, bias), wv)
            };
            for r in 0..R {
                let mut dot = _mm512_loadu_si512(offsets[r].add(lane).cast());
                let x = _mm512_loadu_si512(bytes[r].add(at).cast());
                dot = _mm512_dpbusd_epi32(dot, low, x);
                if Q4 {
                    let x = _mm512_loadu_si512(bytes[r].add(layout.plane_bytes + at).cast());
                    dot = _mm512_dpbusd_epi32(dot, high, x);
                }
                let k = _mm512_mul_ps(dw, _mm512_loadu_ps(lane_scales[r].add(lane)));
                sums[r] = _mm512_fmadd_ps(k, _mm512_cvtepi32_ps(dot), sums[r]);
            }
            previous = wv;
        }
    };
    // Whole periods with the places as constants, then the rest.
    let period = words.len();
    let whole = layout.row_bytes / VECTOR;
    let mut chunk = 0;
    while chunk + period <= whole {
        for phase in 0..period {
            step(chunk + phase, phase, true);
        }
        chunk += period;
    }
    for (phase, chunk) in (chunk..layout.plane_bytes / VECTOR).enumerate() {
        step(chunk, phase, chunk < whole);
    }
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(sums[r]);
    }
}

over_weight_rows!(each_row, rows, "avx512f,avx512bw,avx2,fma,f16c");
over_weight_rows!(
    each_row_q4,
    rows_pairs::<true, false, R>,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
);
over_weight_rows!(
    each_row_int8,
    rows_int8,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
);
over_weight_rows!(
    each_row_alone,
    rows_alone,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"
);

/// The products of int16 rows (`int8 = false`) or int8 rows in the
/// order `super::int8` arranged them (a row laid out in step with the
/// weights is alone in its tile).
pub(crate) unsafe fn dot_rows_quantized(
    dtype: DType,
    int8: bool,
    w: &WeightRows<'_>,
    xs: &[&QuantizedRow],
    out: &mut [f32],
    out_stride: usize,
) {
    // SAFETY: the caller checked the CPU features (VNNI included).
    unsafe {
        if int8 && !xs[0].lane_scales.is_empty() {
            // Laid out so only when alone in its tile: one row.
            if dtype == DType::Q4_0 {
                each_row_alone::<true, 1>(w, xs, out, out_stride)
            } else {
                each_row_alone::<false, 1>(w, xs, out, out_stride)
            }
        } else if int8 {
            for_each_tile_size!(each_row_int8, dtype, xs, w, xs, out, out_stride)
        } else if dtype == DType::Q4_0 && xs.iter().all(|x| !x.byte_planes.is_empty()) {
            for_each_tile_size!(each_row_q4, dtype, xs, w, xs, out, out_stride)
        } else {
            for_each_tile_size!(each_row, dtype, xs, w, xs, out, out_stride)
        }
    }
}
