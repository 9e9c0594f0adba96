//! Every function needs AVX2, FMA and F16C (the caller checked `isa()`)
//! and reads only inside the slices it is given.

use std::arch::x86_64::*;

use glmhal_hal::{DType, QUANT_BLOCK};

use super::{QuantizedOperands, QuantizedRow};

/// The sum of the eight lanes.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn sum8(v: __m256) -> f32 {
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(_mm256_castps256_ps128(v), hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

/// How far ahead of the bytes being multiplied the matrix-vector
/// products ask for weights. A decode product streams its weights from
/// memory once; the hardware prefetchers alone left single-row kernels
/// waiting on it (on AMD Zen 3, 10–25 % more tokens/s with requests
/// 8 KiB ahead into L1). Requests 32 KiB ahead into L2 were faster
/// still on AMD Zen 4 (the Q4_0 AVX2 kernel not measured there): in three alternating decode runs each, F16
/// 10.57–11.47 against 7.74–9.33 tok/s with 8 KiB into L1, Q8_0 (AVX-512)
/// 19.4–22.6 against 16.2–17.7 with 8 KiB non-temporal, Q8_0 (AVX2)
/// 18.95–19.69 against 13.05–19.15; one thread, F16, 16 and 64 KiB
/// about as fast as 32.
pub(crate) const PREFETCH_AHEAD: usize = 32 << 10;

/// Asks for the cache line `PREFETCH_AHEAD` bytes past `p`, into L2.
/// The address may lie past the weights (a prefetch never faults), so
/// it is formed with wrapping arithmetic and never dereferenced.
#[target_feature(enable = "avx2")]
pub(crate) fn prefetch_ahead(p: *const u8) {
    _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(PREFETCH_AHEAD).cast());
}

/// Eight weights from `p` (element `i`) as f32.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(dtype: DType, p: *const u8, i: usize) -> __m256 {
    // SAFETY: the caller guarantees elements i..i+8 lie inside the row.
    unsafe {
        match dtype {
            DType::F32 => _mm256_loadu_ps(p.add(4 * i).cast()),
            DType::F16 => _mm256_cvtph_ps(_mm_loadu_si128(p.add(2 * i).cast())),
            _ => {
                let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(2 * i).cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_float<const R: usize>(dtype: DType, w: &[u8], xs: &[&[f32]], out: &mut [f32]) {
    let n = xs[0].len();
    assert!(xs.len() == R && xs.iter().all(|x| x.len() == n) && out.len() >= R);
    assert!(w.len() >= dtype.block_bytes() * n);
    let p = w.as_ptr();
    let mut a0 = [_mm256_setzero_ps(); R];
    let mut a1 = [_mm256_setzero_ps(); R];
    let mut i = 0;
    let esize = dtype.block_bytes();
    // SAFETY (every load below): i + 16 <= n or i + 8 <= n, inside `w` and each x (asserted).
    while i + 16 <= n {
        // One request per cache line of weights (16 f16/bf16 are half a line).
        if (i * esize) % 64 < 16 * esize {
            prefetch_ahead(p.wrapping_add(i * esize));
        }
        let (w0, w1) = unsafe { (load8(dtype, p, i), load8(dtype, p, i + 8)) };
        for r in 0..R {
            let x = xs[r].as_ptr();
            let (x0, x1) = unsafe { (_mm256_loadu_ps(x.add(i)), _mm256_loadu_ps(x.add(i + 8))) };
            a0[r] = _mm256_fmadd_ps(w0, x0, a0[r]);
            a1[r] = _mm256_fmadd_ps(w1, x1, a1[r]);
        }
        i += 16;
    }
    while i + 8 <= n {
        let w0 = unsafe { load8(dtype, p, i) };
        for r in 0..R {
            let x0 = unsafe { _mm256_loadu_ps(xs[r].as_ptr().add(i)) };
            a0[r] = _mm256_fmadd_ps(w0, x0, a0[r]);
        }
        i += 8;
    }
    for r in 0..R {
        let mut total = sum8(_mm256_add_ps(a0[r], a1[r]));
        for (j, x) in xs[r].iter().enumerate().skip(i) {
            total += super::weight(dtype, w, j) * x;
        }
        out[r] = total;
    }
}

pub(crate) unsafe fn dot_rows(dtype: DType, w: &[u8], xs: &[&[f32]], out: &mut [f32]) {
    // SAFETY: the caller checked the CPU features.
    unsafe {
        match xs.len() {
            1 => rows_float::<1>(dtype, w, xs, out),
            2 => rows_float::<2>(dtype, w, xs, out),
            3 => rows_float::<3>(dtype, w, xs, out),
            4 => rows_float::<4>(dtype, w, xs, out),
            _ => {}
        }
    }
}

/// The f16 scale at the start of a block, as f32 in all eight lanes, through F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn scale(block: *const u8) -> __m256 {
    // SAFETY: the caller passes a whole block.
    let bits = unsafe { block.cast::<i16>().read_unaligned() };
    // Converted in every lane, not in lane 0 and broadcast: for a lane-0
    // value the compiler inserts the bits into whatever register is
    // free, often an accumulator, and the scale then waits on the
    // previous block's sum (a loop-carried chain of ~15 cycles).
    _mm256_cvtph_ps(_mm_set1_epi16(bits))
}

/// The f16 scales of the eight blocks from `first` on, `stride` bytes
/// apart, as f32.
#[target_feature(enable = "avx2,f16c")]
unsafe fn scales8(first: *const u8, stride: usize) -> __m256 {
    // SAFETY: the caller passes eight whole blocks.
    let bits = |i: usize| unsafe { first.add(i * stride).cast::<i16>().read_unaligned() };
    _mm256_cvtph_ps(_mm_setr_epi16(
        bits(0),
        bits(1),
        bits(2),
        bits(3),
        bits(4),
        bits(5),
        bits(6),
        bits(7),
    ))
}

/// A block's 32 four-bit weights as stored (0..=15, not yet offset by
/// −8): elements 0..16 and 16..32 as two vectors of 16 int16.
#[target_feature(enable = "avx2")]
unsafe fn nibbles16(block: *const u8) -> (__m256i, __m256i) {
    // SAFETY: the caller passes a whole 18-byte Q4_0 block.
    let both = unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(block.add(2).cast())) };
    // Bytes 0..8 of the low copy and 8..16 of the high copy, each
    // widened to 16 bits (index −1 writes zero): one in-lane shuffle,
    // cheaper than a widening move across lanes.
    let widen = _mm256_setr_epi8(
        0, -1, 1, -1, 2, -1, 3, -1, 4, -1, 5, -1, 6, -1, 7, -1, //
        8, -1, 9, -1, 10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1,
    );
    let bytes = _mm256_shuffle_epi8(both, widen);
    // Each byte widened to 16 bits holds both nibbles, so one mask and
    // one shift separate them without crossing lanes.
    (
        _mm256_and_si256(bytes, _mm256_set1_epi16(0x0f)),
        _mm256_srli_epi16(bytes, 4),
    )
}

/// A Q8_0 block's 32 weights as two halves of 16 int16.
#[target_feature(enable = "avx2")]
unsafe fn bytes16(block: *const u8) -> (__m256i, __m256i) {
    // SAFETY: the caller passes a whole 34-byte Q8_0 block.
    unsafe {
        (
            _mm256_cvtepi8_epi16(_mm_loadu_si128(block.add(2).cast())),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(block.add(18).cast())),
        )
    }
}

/// A block's 32 weights as two halves of 16 int16.
#[target_feature(enable = "avx2")]
unsafe fn weights16(q4: bool, block: &[u8]) -> (__m256i, __m256i) {
    // SAFETY: the block holds 34 (Q8_0) or 18 (Q4_0) bytes (the caller's chunking).
    unsafe {
        if q4 {
            let (lo, hi) = nibbles16(block.as_ptr());
            let eight = _mm256_set1_epi16(8);
            (_mm256_sub_epi16(lo, eight), _mm256_sub_epi16(hi, eight))
        } else {
            bytes16(block.as_ptr())
        }
    }
}

/// A Q4_0 block's 32 nibbles as stored (0..=15), as 32 unsigned bytes
/// in element order (low nibbles, then high nibbles).
#[target_feature(enable = "avx2")]
unsafe fn nibbles32(block: *const u8) -> __m256i {
    // SAFETY: the caller passes a whole 18-byte Q4_0 block.
    let q = unsafe { _mm_loadu_si128(block.add(2).cast()) };
    let low = _mm_set1_epi8(0x0f);
    _mm256_set_m128i(
        _mm_and_si128(_mm_srli_epi16(q, 4), low),
        _mm_and_si128(q, low),
    )
}

/// The dot product of 32 weights with 32 int8 activations, as eight
/// int32 lane sums (exact): Q4_0 nibbles (unsigned) by `maddubs`
/// directly, at most 2·15·127 per int16; Q8_0 bytes with the weights'
/// signs moved onto the activations, |w| ≤ 128 and |x| ≤ 127 keeping
/// `maddubs` below int16's limit (2·128·127 = 32 512).
#[target_feature(enable = "avx2")]
fn byte_dot<const Q4: bool>(w: __m256i, x: __m256i) -> __m256i {
    let pairs = if Q4 {
        _mm256_maddubs_epi16(w, x)
    } else {
        _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
    };
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// `R` quantized activation rows (int16, or int8 with `I8`) against
/// one Q8_0 (`Q4 = false`) or Q4_0 row. Per block: the weights are
/// unpacked once for every activation row; each row's integer products
/// (two `madd` for int16, `maddubs` and `madd` for int8, exact) are
/// scaled by both blocks' scales into f32 accumulators. Q4_0 nibbles
/// are multiplied as stored; the −8 offset comes back through the
/// row's precomputed `−8·Σq`, eight blocks per FMA. Weight scales are
/// converted eight blocks at a time as well: per block and row that
/// leaves the integer products, a conversion, a shuffle and an FMA.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn rows_quantized<const Q4: bool, const I8: bool, const R: usize>(
    w: &[u8],
    xs: &[&QuantizedRow],
    out: &mut [f32],
) {
    let QuantizedOperands {
        blocks,
        block_bytes: bb,
        values,
        bytes,
        scales,
        offsets,
    } = QuantizedOperands::<R>::new(Q4, I8, w, xs, out);
    // Two accumulator sets (even and odd blocks) so consecutive FMAs do
    // not wait on each other; both indexed statically so they stay in
    // registers. Q4_0's offsets (scaled) gather in a third.
    let mut even = [_mm256_setzero_ps(); R];
    let mut odd = [_mm256_setzero_ps(); R];
    let mut offset = [_mm256_setzero_ps(); R];
    // Macros rather than closures: the bodies must be inlined into this
    // function to use its target features.
    //
    // Block b's integer products, one f32 vector (8 lanes to be summed) per row.
    macro_rules! products {
        ($b:expr) => {{
            let b = $b;
            // SAFETY: b < blocks, so block b lies inside `w` and every
            // activation row's arrays (asserted above).
            unsafe {
                let block = w.as_ptr().add(b * bb);
                let products: [__m256; R] = if I8 {
                    let wv = if Q4 {
                        nibbles32(block)
                    } else {
                        _mm256_loadu_si256(block.add(2).cast())
                    };
                    std::array::from_fn(|r| {
                        let x = _mm256_loadu_si256(bytes[r].add(b * QUANT_BLOCK).cast());
                        _mm256_cvtepi32_ps(byte_dot::<Q4>(wv, x))
                    })
                } else {
                    let (w0, w1) = if Q4 { nibbles16(block) } else { bytes16(block) };
                    std::array::from_fn(|r| {
                        let p = values[r].add(b * QUANT_BLOCK);
                        _mm256_cvtepi32_ps(_mm256_add_epi32(
                            _mm256_madd_epi16(w0, _mm256_loadu_si256(p.cast())),
                            _mm256_madd_epi16(w1, _mm256_loadu_si256(p.add(16).cast())),
                        ))
                    })
                };
                products
            }
        }};
    }
    // Block b + i of a group of eight: its scales (lane i of the group's
    // scales, copied to every lane by one in-lane shuffle of `half`).
    macro_rules! grouped {
        ($b:expr, $half:ident, $lane:literal, $acc:ident) => {{
            let products = products!($b);
            for r in 0..R {
                let k = _mm256_permute_ps::<{ $lane * 0x55 }>($half[r]);
                $acc[r] = _mm256_fmadd_ps(k, products[r], $acc[r]);
            }
        }};
    }
    let mut b = 0;
    // Groups of eight blocks: their weight scales converted together and
    // multiplied by the rows' scales in one vector per row.
    while b + 8 <= blocks {
        // The group's bytes are 144 (Q4_0) or 272 (Q8_0): a request per line.
        let group = w.as_ptr().wrapping_add(b * bb);
        for line in (0..8 * bb).step_by(64) {
            prefetch_ahead(group.wrapping_add(line));
        }
        // SAFETY: blocks b..b+8 lie inside `w` and the rows' scales (asserted).
        let k: [__m256; R] = unsafe {
            let dw = scales8(w.as_ptr().add(b * bb), bb);
            std::array::from_fn(|r| _mm256_mul_ps(dw, _mm256_loadu_ps(scales[r].add(b))))
        };
        if Q4 {
            for r in 0..R {
                // SAFETY: as for the scales.
                let o = unsafe { _mm256_loadu_ps(offsets[r].add(b)) };
                offset[r] = _mm256_fmadd_ps(k[r], o, offset[r]);
            }
        }
        let low: [__m256; R] = std::array::from_fn(|r| _mm256_permute2f128_ps(k[r], k[r], 0x00));
        grouped!(b, low, 0, even);
        grouped!(b + 1, low, 1, odd);
        grouped!(b + 2, low, 2, even);
        grouped!(b + 3, low, 3, odd);
        let high: [__m256; R] = std::array::from_fn(|r| _mm256_permute2f128_ps(k[r], k[r], 0x11));
        grouped!(b + 4, high, 0, even);
        grouped!(b + 5, high, 1, odd);
        grouped!(b + 6, high, 2, even);
        grouped!(b + 7, high, 3, odd);
        b += 8;
    }
    while b < blocks {
        let mut products = products!(b);
        // SAFETY: block b lies inside `w` (asserted).
        let d = unsafe { scale(w.as_ptr().add(b * bb)) };
        for r in 0..R {
            // SAFETY (both reads): b < blocks, the row's scale and
            // (for Q4_0) offset count (asserted).
            if Q4 {
                // An eighth of the offset in each of the eight lanes (exact).
                let o = _mm256_set1_ps(0.125 * unsafe { *offsets[r].add(b) });
                products[r] = _mm256_add_ps(products[r], o);
            }
            let k = _mm256_mul_ps(d, _mm256_set1_ps(unsafe { *scales[r].add(b) }));
            even[r] = _mm256_fmadd_ps(k, products[r], even[r]);
        }
        b += 1;
    }
    for r in 0..R {
        out[r] = sum8(_mm256_add_ps(_mm256_add_ps(even[r], odd[r]), offset[r]));
    }
}

/// `e^x` in every lane: `x = n·ln 2 + r` with |r| ≤ ln 2 / 2, a
/// polynomial for `e^r` and `n` added to the exponent. Inputs are
/// clamped to ±87.3 (results stay normal); a NaN stays NaN.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp8(x: __m256) -> __m256 {
    // `max`/`min` return their second operand when one is NaN: x last keeps a NaN.
    let x = _mm256_min_ps(
        _mm256_set1_ps(87.3),
        _mm256_max_ps(_mm256_set1_ps(-87.3), x),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    // ln 2 in two parts, so n·ln 2 is subtracted without rounding error.
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let e = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    let scale = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(e, _mm256_castsi256_ps(scale))
}

/// `v = e^(v − max)` for whole vectors of eight of `row`: how many it
/// replaced and their sum.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_shifted(row: &mut [f32], max: f32) -> (usize, f32) {
    let m = _mm256_set1_ps(max);
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= row.len() {
        // SAFETY: i + 8 ≤ len.
        unsafe {
            let p = row.as_mut_ptr().add(i);
            let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), m));
            _mm256_storeu_ps(p, e);
            acc = _mm256_add_ps(acc, e);
        }
        i += 8;
    }
    (i, sum8(acc))
}

/// [`super::axpy`] for whole vectors of eight of equally long `x` and
/// `y`; returns how many values it updated.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) -> usize {
    assert!(x.len() == y.len());
    let av = _mm256_set1_ps(a);
    let mut i = 0;
    while i + 8 <= y.len() {
        // SAFETY: i + 8 ≤ len of both.
        unsafe {
            let p = y.as_mut_ptr().add(i);
            let xv = _mm256_loadu_ps(x.as_ptr().add(i));
            _mm256_storeu_ps(p, _mm256_fmadd_ps(av, xv, _mm256_loadu_ps(p)));
        }
        i += 8;
    }
    i
}

/// [`super::silu_mul`] for whole vectors of eight; returns how many values it wrote.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> usize {
    let n = out.len();
    assert!(gate.len() >= n && up.len() >= n);
    let mut i = 0;
    let one = _mm256_set1_ps(1.0);
    while i + 8 <= n {
        // SAFETY: i + 8 ≤ n, inside all three slices (asserted).
        unsafe {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(silu, u));
        }
        i += 8;
    }
    i
}

/// Eight int16 values times `d`, stored at `out`.
#[target_feature(enable = "avx2")]
unsafe fn scaled8(v: __m128i, d: __m256, out: *mut f32) {
    let f = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(v));
    // SAFETY: the caller passes room for eight f32.
    unsafe { _mm256_storeu_ps(out, _mm256_mul_ps(f, d)) };
}

/// f16 or bf16 values to f32, eight at a time.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn widen(dtype: DType, src: &[u8], dst: &mut [f32]) {
    let n = dst.len();
    assert!(src.len() >= 2 * n);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: elements i..i+8 lie inside both slices (asserted).
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(i), load8(dtype, src.as_ptr(), i)) };
        i += 8;
    }
    for (j, o) in dst.iter_mut().enumerate().skip(i) {
        *o = super::weight(dtype, src, j);
    }
}

#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn dequantize(q4: bool, src: &[u8], dst: &mut [f32]) {
    let bb = if q4 { 18 } else { 34 };
    for (block, out) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(QUANT_BLOCK)) {
        // SAFETY: `block` is one whole block.
        let d = unsafe { scale(block.as_ptr()) };
        let o = out.as_mut_ptr();
        // SAFETY: `block` is one whole block and `out` holds 32 f32;
        // the weights come unpacked exactly as the dot products see them.
        unsafe {
            let (lo, hi) = weights16(q4, block);
            scaled8(_mm256_castsi256_si128(lo), d, o);
            scaled8(_mm256_extracti128_si256::<1>(lo), d, o.add(8));
            scaled8(_mm256_castsi256_si128(hi), d, o.add(16));
            scaled8(_mm256_extracti128_si256::<1>(hi), d, o.add(24));
        }
    }
}

over_weight_rows!(each_row, rows_quantized::<Q4, false, R>, "avx2,fma,f16c");
over_weight_rows!(
    each_row_int8,
    rows_quantized::<Q4, true, R>,
    "avx2,fma,f16c"
);

/// The products of int16 rows (`int8 = false`) or int8 rows in their
/// element order.
pub(crate) unsafe fn dot_rows_quantized(
    dtype: DType,
    int8: bool,
    w: &super::WeightRows<'_>,
    xs: &[&QuantizedRow],
    out: &mut [f32],
    out_stride: usize,
) {
    // SAFETY: the caller checked the CPU features.
    unsafe {
        if int8 {
            for_each_tile_size!(each_row_int8, dtype, xs, w, xs, out, out_stride)
        } else {
            for_each_tile_size!(each_row, dtype, xs, w, xs, out, out_stride)
        }
    }
}
