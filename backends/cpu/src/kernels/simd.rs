//! Dot products chosen at run time by CPU feature: AVX2 + FMA + F16C where
//! the CPU has them (checked once; at the AVX-512 level the Q8_0/Q4_0 dot
//! products use 512-bit registers), a portable path everywhere else. They
//! read weights as stored, so a matrix-vector product never writes a
//! converted copy of a weight row:
//!
//! - f32 · f32, f16 · f32 and bf16 · f32 (weights converted in registers,
//!   f32 accumulation);
//! - Q8_0 · x and Q4_0 · x in integers: activations are quantized once per
//!   product into blocks of 32 integers with an f32 scale
//!   ([`QuantizedRow`]), each block's integer dot product is exact, then
//!   scaled in f32. The blocks hold int8 (the default, as llama.cpp
//!   quantizes activations for these weights; one byte product per weight,
//!   in [`int8`]) or int16 ([`ActivationBits`]: rounding error near f32's,
//!   where int8 costs up to half a step of 1/127 of each block's largest
//!   value).

use std::sync::OnceLock;

use glmhal_hal::{quant::block_scale, DType, QUANT_BLOCK};

use super::scratch::Scratch;

pub(crate) mod attend;
mod int8;

/// The instruction set the kernels use on this CPU, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// Plain Rust the compiler vectorizes for the build target.
    Portable,
    /// AVX2, FMA and F16C.
    Avx2,
    /// AVX2's set plus AVX-512 F, BW, VL and VNNI: the prefill products,
    /// the Q8_0/Q4_0 dot products and their activations' quantization use
    /// 512-bit registers (the rest of the kernels stay on AVX2).
    Avx512,
}

impl Isa {
    /// Whether the AVX2 kernels may run (every level above portable has them).
    pub(crate) fn has_avx2(self) -> bool {
        self >= Isa::Avx2
    }

    /// The name `GLMHAL_CPU_ISA` and the device report use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The best level this CPU supports.
    fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni");
            return if avx512 { Isa::Avx512 } else { Isa::Avx2 };
        }
        Isa::Portable
    }
}

/// Detected once per process. `GLMHAL_CPU_ISA` (`portable`, `avx2` or
/// `avx512`) caps the level, so a machine with AVX-512 can check its AVX2
/// and portable paths too; a cap above what the CPU has changes nothing,
/// and any other value is refused by [`isa_setting_error`].
pub(crate) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let detected = Isa::detected();
        match requested_isa() {
            Ok(Some(cap)) => cap.min(detected),
            _ => detected,
        }
    })
}

/// Whether the kernels may use AVX-512 BF16 (`vdpbf16ps`, two bf16
/// products per f32 lane): the level in use is AVX-512 and the CPU has it.
pub(crate) fn has_avx512_bf16() -> bool {
    static BF16: OnceLock<bool> = OnceLock::new();
    *BF16.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if isa() == Isa::Avx512 {
            return is_x86_feature_detected!("avx512bf16");
        }
        false
    })
}

/// The levels `GLMHAL_CPU_ISA` can name, in increasing order.
const ISAS: [Isa; 3] = [Isa::Portable, Isa::Avx2, Isa::Avx512];

/// The cap `GLMHAL_CPU_ISA` asks for (`None` when it is unset).
fn requested_isa() -> Result<Option<Isa>, String> {
    env_setting("GLMHAL_CPU_ISA", &ISAS, Isa::name)
}

/// The option of `options` whose `name` is `value`, or why there is none.
fn parse_named<T: Copy>(
    value: &str,
    options: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, String> {
    options
        .iter()
        .copied()
        .find(|o| name(*o) == value)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|o| name(*o)).collect();
            format!("{value:?} is not one of {}", names.join(", "))
        })
}

/// The option environment variable `var` names (`None` when it is unset).
fn env_setting<T: Copy>(
    var: &str,
    options: &[T],
    name: fn(T) -> &'static str,
) -> Result<Option<T>, String> {
    match std::env::var(var) {
        Ok(value) => parse_named(&value, options, name).map(Some),
        Err(_) => Ok(None),
    }
}

/// Why the CPU backend cannot honour `GLMHAL_CPU_ISA`, if it cannot.
pub(crate) fn isa_setting_error() -> Option<String> {
    requested_isa().err()
}

/// How the Q8_0/Q4_0 products quantize their activations, for the whole
/// process: `GLMHAL_CPU_ACTIVATIONS` (`int8` or `int16`), else int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActivationBits {
    /// Blocks of 32 int8, `scale = max|x| / 127`: what llama.cpp does for
    /// these weights, and one byte product per weight (`vpdpbusd` or
    /// `maddubs`).
    Int8,
    /// Blocks of 32 int16, `scale = max|x| / 32767`: rounding error near
    /// f32's, at twice the integer work per weight.
    Int16,
}

impl ActivationBits {
    /// The name `GLMHAL_CPU_ACTIVATIONS` and the device report use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ActivationBits::Int8 => "int8",
            ActivationBits::Int16 => "int16",
        }
    }
}

/// Read once per process; an unknown value is refused by
/// [`activation_setting_error`] (and the default is used meanwhile).
pub(crate) fn activation_bits() -> ActivationBits {
    static BITS: OnceLock<ActivationBits> = OnceLock::new();
    *BITS.get_or_init(|| {
        requested_bits()
            .ok()
            .flatten()
            .unwrap_or(ActivationBits::Int8)
    })
}

/// The precisions `GLMHAL_CPU_ACTIVATIONS` can name.
const PRECISIONS: [ActivationBits; 2] = [ActivationBits::Int8, ActivationBits::Int16];

/// The precision `GLMHAL_CPU_ACTIVATIONS` asks for (`None` when unset).
fn requested_bits() -> Result<Option<ActivationBits>, String> {
    env_setting("GLMHAL_CPU_ACTIVATIONS", &PRECISIONS, ActivationBits::name)
}

/// Why the CPU backend cannot honour `GLMHAL_CPU_ACTIVATIONS`, if it cannot.
pub(crate) fn activation_setting_error() -> Option<String> {
    requested_bits().err()
}

/// An integer type activations are quantized to.
pub(crate) trait QuantValue: Copy + Default + crate::kernels::scratch::Pooled {
    /// Largest magnitude a value takes (the scale maps `max|x|` to it).
    const MAX: f32;
    /// `v` (already rounded, within ±`MAX`) as this type.
    fn from_rounded(v: f32) -> Self;
    /// The value as an i32.
    fn widen(self) -> i32;
}

impl QuantValue for i8 {
    const MAX: f32 = 127.0;
    fn from_rounded(v: f32) -> Self {
        v as i8
    }
    fn widen(self) -> i32 {
        self as i32
    }
}

impl QuantValue for i16 {
    const MAX: f32 = 32767.0;
    fn from_rounded(v: f32) -> Self {
        v as i16
    }
    fn widen(self) -> i32 {
        self as i32
    }
}

/// Activations quantized to blocks of 32 integers with one f32 scale each
/// (`x ≈ scale · q`, `q = round(x / scale)`, `scale = max|x| / MAX`): int16
/// in `values` or int8 in `bytes`, the other one empty.
#[derive(Default)]
pub(crate) struct QuantizedRow {
    /// int16 values, 32 per block (empty for int8 rows).
    pub values: Scratch<i16>,
    /// int8 values, 32 per block, where the product for this row's weight
    /// dtype reads them (see [`int8`]); empty for int16 rows.
    pub bytes: Scratch<i8>,
    /// For a row laid out in step with the weights
    /// ([`int8::WeightLayout`]; empty otherwise): per 32-bit lane of
    /// `bytes`, `−c·Σq` over its values.
    pub lane_offsets: Scratch<i32>,
    /// For a row laid out in step with the weights: per lane, the scale of
    /// the block whose values it holds (0 past the row).
    pub lane_scales: Scratch<f32>,
    /// One scale per block. NaN for a block holding a NaN or an infinity
    /// (its values are then 0), so every product it enters is NaN.
    pub scales: Scratch<f32>,
    /// Per block, `−c·Σq`, where `c` is the bias the product adds to the
    /// weights to multiply them as unsigned bytes: 8 for Q4_0's nibbles
    /// (stored `q + 8`), 128 for Q8_0 in the AVX-512 int8 product, 0 where
    /// the product multiplies signed weights. Exact in f32 (|Σq| < 2²⁰).
    pub offsets: Scratch<f32>,
    /// For the AVX-512 Q4_0 product of int16 rows only (empty otherwise):
    /// the values split into bytes, `q = 256·high + low`, in the order the
    /// weights' nibbles unpack to, [`PAIR_PLANE_BYTES`] per pair of blocks
    /// (see `avx512::byte_planes`).
    pub byte_planes: Scratch<u8>,
}

/// Bytes of [`QuantizedRow::byte_planes`] per pair of blocks: 64 high
/// bytes, then 64 low bytes.
#[cfg(target_arch = "x86_64")]
const PAIR_PLANE_BYTES: usize = 128;

impl QuantizedRow {
    /// Quantizes `x` (a multiple of 32 values) to `bits` for products with
    /// `dtype` weights at the current [`isa`], `alone` in its tile of
    /// activation rows or with others, reusing this row's storage.
    pub fn quantize(&mut self, x: &[f32], dtype: DType, bits: ActivationBits, alone: bool) {
        let blocks = x.len() / QUANT_BLOCK;
        self.scales.resize(blocks, 0.0);
        self.offsets.resize(blocks, 0.0);
        self.byte_planes.clear();
        self.lane_offsets.clear();
        self.lane_scales.clear();
        let (scales, sums) = (&mut self.scales[..], &mut self.offsets[..]);
        match bits {
            ActivationBits::Int8 if alone && int8::in_weight_layout(dtype) => {
                self.values.clear();
                let mut plain = Scratch::filled(x.len(), 0i8);
                quantize_into(x, &mut plain[..], scales, sums);
                let bias = int8::weight_bias(dtype, bits) as i32;
                int8::WeightLayout::new(dtype, blocks).lay_out(
                    &plain,
                    scales,
                    bias,
                    &mut self.bytes,
                    &mut self.lane_offsets,
                    &mut self.lane_scales,
                );
            }
            ActivationBits::Int8 => {
                self.values.clear();
                self.bytes.resize(x.len(), 0);
                quantize_into(x, &mut self.bytes[..], scales, sums);
                int8::arrange(dtype, &mut self.bytes[..]);
            }
            ActivationBits::Int16 => {
                self.bytes.clear();
                self.values.resize(x.len(), 0);
                quantize_into(x, &mut self.values[..], scales, sums);
                #[cfg(target_arch = "x86_64")]
                if dtype == DType::Q4_0 && isa() == Isa::Avx512 {
                    let pairs = x.len() / (2 * QUANT_BLOCK);
                    self.byte_planes.resize(pairs * PAIR_PLANE_BYTES, 0);
                    // SAFETY: the CPU has AVX-512 BW and VL (checked by
                    // `isa`); the lengths match (the function asserts them).
                    unsafe { avx512::byte_planes(&self.values[..], &mut self.byte_planes[..]) };
                }
            }
        }
        // Σq becomes −c·Σq (c a power of two: exact).
        let bias = int8::weight_bias(dtype, bits);
        self.offsets.iter_mut().for_each(|o| *o *= -bias);
    }
}

/// Quantizes the blocks of `x` into `values`, their scales and `Σq`, with
/// 512-bit registers where the level is AVX-512 (same results bit for bit).
fn quantize_into<T: QuantValue>(x: &[f32], values: &mut [T], scales: &mut [f32], sums: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa() == Isa::Avx512 {
        // SAFETY: the CPU has AVX-512 F and BW (checked by `isa`); the
        // function asserts the lengths.
        unsafe { avx512::quantize_blocks(x, values, scales, sums) };
        return;
    }
    quantize_blocks(x, values, scales, sums);
}

/// The blocks of [`QuantizedRow::quantize`] in plain Rust: per block of
/// 32, `d = max|x| / MAX`, `q = round(x / d)` (half away from zero) and
/// `Σq`. A block with a NaN or an infinity gets `d = NaN` and `q = 0`.
fn quantize_blocks<T: QuantValue>(
    x: &[f32],
    values: &mut [T],
    scales: &mut [f32],
    sums: &mut [f32],
) {
    for (((block, q), s), sum) in x
        .chunks_exact(QUANT_BLOCK)
        .zip(values.chunks_exact_mut(QUANT_BLOCK))
        .zip(scales.iter_mut())
        .zip(sums.iter_mut())
    {
        if !block.iter().all(|v| v.is_finite()) {
            q.fill(T::default());
            (*s, *sum) = (f32::NAN, 0.0);
            continue;
        }
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / T::MAX;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        for (o, v) in q.iter_mut().zip(block) {
            *o = T::from_rounded((v * id).round().clamp(-T::MAX, T::MAX));
        }
        *s = d;
        *sum = q.iter().map(|v| v.widen()).sum::<i32>() as f32;
    }
}

/// Activation rows one call handles (each weight row is read once for all of them).
pub(crate) const TILE: usize = 4;

fn weight(dtype: DType, w: &[u8], i: usize) -> f32 {
    match dtype {
        DType::F32 => f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]),
        DType::F16 => half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32(),
        _ => f32::from_bits((u16::from_le_bytes([w[2 * i], w[2 * i + 1]]) as u32) << 16),
    }
}

/// `out[r] = Σ_i w[i]·xs[r][i]` for a row of f32, f16 or bf16 weights stored
/// in `w` (packed, little-endian) and up to [`TILE`] activation rows.
pub(crate) fn dot_rows(dtype: DType, w: &[u8], xs: &[&[f32]], out: &mut [f32]) {
    debug_assert!(xs.len() <= TILE && out.len() >= xs.len());
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: the CPU has AVX2, FMA and F16C (checked by `isa`); lengths are asserted inside.
        unsafe { avx2::dot_rows(dtype, w, xs, out) };
        return;
    }
    for (o, x) in out.iter_mut().zip(xs) {
        *o = x
            .iter()
            .enumerate()
            .map(|(i, v)| weight(dtype, w, i) * v)
            .sum();
    }
}

/// Weight rows of one product, each `stride` bytes after the previous.
#[derive(Clone, Copy)]
pub(crate) struct WeightRows<'a> {
    /// From the first row's first byte to (at least) the last row's last.
    pub bytes: &'a [u8],
    /// Bytes from one row's start to the next one's.
    pub stride: usize,
    /// Rows.
    pub count: usize,
}

impl<'a> WeightRows<'a> {
    /// Row `i` and whatever follows it (the kernels read a row's length).
    fn row(&self, i: usize) -> &'a [u8] {
        &self.bytes[i * self.stride..]
    }
}

/// `out[i·out_stride + r] = Σ w_i·xs[r]` for every Q8_0 or Q4_0 weight row
/// `w_i` of `w` and up to [`TILE`] quantized activation rows, all int8 or
/// all int16.
pub(crate) fn dot_rows_quantized(
    dtype: DType,
    w: &WeightRows<'_>,
    xs: &[&QuantizedRow],
    out: &mut [f32],
    out_stride: usize,
) {
    debug_assert!(xs.len() <= TILE && out_stride >= xs.len());
    let Some(first) = xs.first() else { return };
    let int8 = !first.bytes.is_empty();
    assert!(
        xs.iter().all(|x| x.bytes.is_empty() != int8),
        "activation rows of one product quantized to different precisions"
    );
    assert!(
        xs.len() == 1 || xs.iter().all(|x| x.lane_scales.is_empty()),
        "a row laid out in step with the weights multiplied with others"
    );
    #[cfg(target_arch = "x86_64")]
    match isa() {
        Isa::Avx512 => {
            // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI besides AVX2, FMA
            // and F16C (checked by `isa`); lengths are asserted inside.
            unsafe { avx512::dot_rows_quantized(dtype, int8, w, xs, out, out_stride) };
            return;
        }
        Isa::Avx2 => {
            // SAFETY: as in `dot_rows`.
            unsafe { avx2::dot_rows_quantized(dtype, int8, w, xs, out, out_stride) };
            return;
        }
        Isa::Portable => {}
    }
    for i in 0..w.count {
        let outs = &mut out[i * out_stride..i * out_stride + xs.len()];
        dot_row_portable(dtype, w.row(i), xs, outs);
    }
}

/// One weight row of [`dot_rows_quantized`] in plain Rust (rows in
/// element order, as [`int8::arrange`] leaves them at this level).
fn dot_row_portable(dtype: DType, w: &[u8], xs: &[&QuantizedRow], out: &mut [f32]) {
    let bb = dtype.block_bytes();
    for (o, x) in out.iter_mut().zip(xs) {
        // Element e of block b, whichever precision the row holds.
        let value = |b: usize, e: usize| {
            let at = b * QUANT_BLOCK + e;
            match x.bytes.get(at) {
                Some(v) => *v as i32,
                None => x.values[at] as i32,
            }
        };
        *o = w
            .chunks_exact(bb)
            .zip(&x.scales)
            .enumerate()
            .map(|(b, (block, s))| {
                let mut sum = 0i32;
                if dtype == DType::Q8_0 {
                    for (e, a) in block[2..].iter().enumerate() {
                        sum += (*a as i8 as i32) * value(b, e);
                    }
                } else {
                    for (e, q) in block[2..].iter().enumerate() {
                        sum += ((q & 0x0f) as i32 - 8) * value(b, e);
                        sum += ((q >> 4) as i32 - 8) * value(b, e + 16);
                    }
                }
                block_scale(block) * s * sum as f32
            })
            .sum();
    }
}

/// `out[i] = silu(gate[i]) · up[i]`, `silu(x) = x / (1 + e^−x)`; on AVX2
/// with a vectorized exponential (a degree-6 polynomial after range
/// reduction, within a few ulp of `f32::exp`), else with `f32::exp`.
pub(crate) fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = out.len().min(gate.len()).min(up.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `isa`); lengths are checked inside.
        done = unsafe { avx2::silu_mul(&gate[..n], &up[..n], &mut out[..n]) };
    }
    for ((o, g), u) in out[done..n]
        .iter_mut()
        .zip(&gate[done..n])
        .zip(&up[done..n])
    {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

/// Softmax of `row` in place: `e^(x − max) / Σ`. On AVX2 the exponentials
/// are vectorized (as in [`silu_mul`]).
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let inv = 1.0 / exp_shifted_in_place(row, max);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `v = e^(v − max)` for every value of `row`, returning their sum (the
/// vectorized exponential of [`silu_mul`] on AVX2).
pub(crate) fn exp_shifted_in_place(row: &mut [f32], max: f32) -> f32 {
    let mut done = 0;
    let mut sum = 0.0f32;
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `isa`).
        (done, sum) = unsafe { avx2::exp_shifted(row, max) };
    }
    for v in &mut row[done..] {
        *v = (*v - max).exp();
        sum += *v;
    }
    sum
}

/// `y += a·x` over the common length.
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked by `isa`).
        done = unsafe { avx2::axpy(a, &x[..n], &mut y[..n]) };
    }
    for (yi, xi) in y[done..n].iter_mut().zip(&x[done..n]) {
        *yi += a * xi;
    }
}

/// Asks the CPU to start loading the cache line that holds `p` (any
/// address: a prefetch never faults and reads nothing the program sees).
#[inline]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Converts `dst.len()` packed values of `src` to f32: f32/f16/bf16 values
/// or whole Q8_0/Q4_0 blocks (`d·q`). Every conversion is exact, so the
/// values are those of [`glmhal_hal::quant::decode_packed`].
pub(crate) fn to_f32(dtype: DType, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa().has_avx2() {
        // SAFETY: as in `dot_rows`; the functions check their lengths.
        unsafe {
            match dtype {
                DType::Q8_0 | DType::Q4_0 => avx2::dequantize(dtype == DType::Q4_0, src, dst),
                DType::F16 | DType::Bf16 => avx2::widen(dtype, src, dst),
                _ => glmhal_hal::quant::decode_packed(dtype, src, dst),
            }
        }
        return;
    }
    glmhal_hal::quant::decode_packed(dtype, src, dst);
}

/// The checked operands of a quantized row product: `R` activation rows
/// (int16, or int8 with `INT8`) against one weight row of Q8_0
/// (`q4 = false`) or Q4_0 blocks, as the AVX2 and AVX-512 kernels read them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct QuantizedOperands<const R: usize> {
    /// Blocks of the weight row (and of every activation row).
    blocks: usize,
    /// Bytes per weight block (34 for Q8_0, 18 for Q4_0).
    block_bytes: usize,
    /// The rows' int16 values (read only by int16 products).
    values: [*const i16; R],
    /// The rows' int8 values (read only by int8 products).
    bytes: [*const i8; R],
    scales: [*const f32; R],
    offsets: [*const f32; R],
}

#[cfg(target_arch = "x86_64")]
impl<const R: usize> QuantizedOperands<R> {
    /// Panics unless `xs` holds `R` rows of as many blocks as `w` has, in
    /// the precision asked for (`int8`), and `out` room for `R` results:
    /// every read the kernels make through these pointers is then inside
    /// the slices.
    fn new(q4: bool, int8: bool, w: &[u8], xs: &[&QuantizedRow], out: &[f32]) -> Self {
        let blocks = xs[0].scales.len();
        let block_bytes = if q4 { 18 } else { 34 };
        assert!(xs.len() == R && out.len() >= R && w.len() >= block_bytes * blocks);
        let values = QUANT_BLOCK * blocks;
        assert!(xs.iter().all(|x| x.scales.len() == blocks
            && x.offsets.len() >= blocks
            && if int8 {
                x.bytes.len() >= values
            } else {
                x.values.len() >= values
            }));
        Self {
            blocks,
            block_bytes,
            values: std::array::from_fn(|r| xs[r].values.as_ptr()),
            bytes: std::array::from_fn(|r| xs[r].bytes.as_ptr()),
            scales: std::array::from_fn(|r| xs[r].scales.as_ptr()),
            offsets: std::array::from_fn(|r| xs[r].offsets.as_ptr()),
        }
    }
}

/// Calls `$rows::<Q4, R>(args…)` for the weights' dtype and the number
/// of activation rows `$xs.len()` (1 to [`TILE`]).
#[cfg(target_arch = "x86_64")]
macro_rules! for_each_tile_size {
    ($rows:ident, $dtype:expr, $xs:expr, $($arg:expr),*) => {
        match ($dtype == DType::Q4_0, $xs.len()) {
            (true, 1) => $rows::<true, 1>($($arg),*),
            (true, 2) => $rows::<true, 2>($($arg),*),
            (true, 3) => $rows::<true, 3>($($arg),*),
            (true, 4) => $rows::<true, 4>($($arg),*),
            (false, 1) => $rows::<false, 1>($($arg),*),
            (false, 2) => $rows::<false, 2>($($arg),*),
            (false, 3) => $rows::<false, 3>($($arg),*),
            (false, 4) => $rows::<false, 4>($($arg),*),
            _ => {}
        }
    };
}

/// Defines `$name::<Q4, R>(w, xs, out, out_stride)`, which runs the
/// one-row kernel `$row::<…>` (by default `$row::<Q4, R>`; its generic
/// arguments may name `Q4` and `R`) on every row of a [`WeightRows`] inside
/// one function with the kernel's CPU features (`$features`): the kernel
/// is inlined there and its constants are set up once for all rows.
#[cfg(target_arch = "x86_64")]
macro_rules! over_weight_rows {
    ($name:ident, $row:ident, $features:literal) => {
        over_weight_rows!($name, $row::<Q4, R>, $features);
    };
    ($name:ident, $row:ident::<$($arg:tt),+>, $features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn $name<const Q4: bool, const R: usize>(
            w: &super::WeightRows<'_>,
            xs: &[&QuantizedRow],
            out: &mut [f32],
            out_stride: usize,
        ) {
            for i in 0..w.count {
                // SAFETY: the caller checked the same CPU features; the
                // kernel asserts the lengths of its slices.
                unsafe { $row::<$($arg),+>(w.row(i), xs, &mut out[i * out_stride..]) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::sum8;

#[cfg(target_arch = "x86_64")]
mod avx2 {
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
    pub(super) const PREFETCH_AHEAD: usize = 32 << 10;

    /// Asks for the cache line `PREFETCH_AHEAD` bytes past `p`, into L2.
    /// The address may lie past the weights (a prefetch never faults), so
    /// it is formed with wrapping arithmetic and never dereferenced.
    #[target_feature(enable = "avx2")]
    pub(super) fn prefetch_ahead(p: *const u8) {
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
                let (x0, x1) =
                    unsafe { (_mm256_loadu_ps(x.add(i)), _mm256_loadu_ps(x.add(i + 8))) };
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

    pub(super) unsafe fn dot_rows(dtype: DType, w: &[u8], xs: &[&[f32]], out: &mut [f32]) {
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
            let low: [__m256; R] =
                std::array::from_fn(|r| _mm256_permute2f128_ps(k[r], k[r], 0x00));
            grouped!(b, low, 0, even);
            grouped!(b + 1, low, 1, odd);
            grouped!(b + 2, low, 2, even);
            grouped!(b + 3, low, 3, odd);
            let high: [__m256; R] =
                std::array::from_fn(|r| _mm256_permute2f128_ps(k[r], k[r], 0x11));
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
    pub(super) fn exp8(x: __m256) -> __m256 {
        // `max`/`min` return their second operand when one is NaN: x last keeps a NaN.
        let x = _mm256_min_ps(
            _mm256_set1_ps(87.3),
            _mm256_max_ps(_mm256_set1_ps(-87.3), x),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E)),
        );
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
    pub(super) unsafe fn exp_shifted(row: &mut [f32], max: f32) -> (usize, f32) {
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
    pub(super) unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) -> usize {
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
    pub(super) unsafe fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> usize {
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
    pub(super) unsafe fn widen(dtype: DType, src: &[u8], dst: &mut [f32]) {
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
    pub(super) unsafe fn dequantize(q4: bool, src: &[u8], dst: &mut [f32]) {
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
    pub(super) unsafe fn dot_rows_quantized(
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
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
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
    unsafe fn rows<const Q4: bool, const R: usize>(
        w: &[u8],
        xs: &[&QuantizedRow],
        out: &mut [f32],
    ) {
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
    pub(super) unsafe fn quantize_blocks<T: super::QuantValue>(
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
    pub(super) unsafe fn byte_planes(values: &[i16], planes: &mut [u8]) {
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
        let nibbles = _mm512_set1_epi8(0x0f);
        let bias = _mm512_set1_epi8(-128);
        let mut b = 0;
        while b < grouped {
            let group = w.as_ptr().wrapping_add(b * bb);
            for line in (0..GROUP * bb).step_by(64) {
                if Q4 {
                    prefetch_ahead_nta(group.wrapping_add(line));
                } else {
                    prefetch_ahead(group.wrapping_add(line));
                }
            }
            // SAFETY: blocks b..b + 16 lie inside `w` and the rows' scales
            // and offsets (asserted). Sixteen scalar loads: a `vpgatherdd`
            // here made the whole product a third slower on AMD Zen 5.
            let k: [__m512; R] = unsafe {
                let bits: [u16; GROUP] =
                    std::array::from_fn(|i| group.add(i * bb).cast::<u16>().read_unaligned());
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(bits.as_ptr().cast()));
                std::array::from_fn(|r| _mm512_mul_ps(dw, _mm512_loadu_ps(scales[r].add(b))))
            };
            for r in 0..R {
                // SAFETY: as for the scales.
                let o = unsafe { _mm512_loadu_ps(offsets[r].add(b)) };
                offset[r] = _mm512_fmadd_ps(k[r], o, offset[r]);
            }
            // Pair p of the group: blocks b + 2p and b + 2p + 1, whose
            // scales (lanes 2p and 2p + 1 of k) go to their blocks' lanes
            // (Q4_0: 0–3, 8–11 and 4–7, 12–15; Q8_0: 0–7 and 8–15);
            // spelled out for every pair so they are constants.
            macro_rules! pair {
                ($p:literal, $sums:ident) => {{
                    let (l0, l1) = ($p * 2, $p * 2 + 1);
                    let lanes = if Q4 {
                        _mm512_setr_epi32(
                            l0, l0, l0, l0, l1, l1, l1, l1, l0, l0, l0, l0, l1, l1, l1, l1,
                        )
                    } else {
                        _mm512_setr_epi32(
                            l0, l0, l0, l0, l0, l0, l0, l0, l1, l1, l1, l1, l1, l1, l1, l1,
                        )
                    };
                    // SAFETY: the pair's blocks lie inside `w`, its
                    // activations inside every row's (asserted).
                    unsafe {
                        let first = group.add(2 * $p * bb + 2);
                        let wv = if Q4 {
                            let q = _mm256_inserti128_si256::<1>(
                                _mm256_castsi128_si256(_mm_loadu_si128(first.cast())),
                                _mm_loadu_si128(first.add(bb).cast()),
                            );
                            _mm512_and_si512(
                                _mm512_inserti64x4::<1>(
                                    _mm512_castsi256_si512(q),
                                    _mm256_srli_epi16::<4>(q),
                                ),
                                nibbles,
                            )
                        } else {
                            _mm512_xor_si512(
                                _mm512_inserti64x4::<1>(
                                    _mm512_castsi256_si512(_mm256_loadu_si256(first.cast())),
                                    _mm256_loadu_si256(first.add(bb).cast()),
                                ),
                                bias,
                            )
                        };
                        for r in 0..R {
                            let sum = if I8 {
                                let at = (b + 2 * $p) * QUANT_BLOCK;
                                let x = _mm512_loadu_si512(bytes[r].add(at).cast());
                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, x)
                            } else {
                                let at = (b / 2 + $p) * PAIR_PLANE_BYTES;
                                let high = _mm512_loadu_si512(planes[r].add(at).cast());
                                let low = _mm512_loadu_si512(planes[r].add(at + 64).cast());
                                let sum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, high);
                                _mm512_dpbusd_epi32(_mm512_slli_epi32::<8>(sum), low, wv)
                            };
                            let kk = _mm512_permutexvar_ps(lanes, k[r]);
                            $sums[r] = _mm512_fmadd_ps(kk, _mm512_cvtepi32_ps(sum), $sums[r]);
                        }
                    }
                }};
            }
            pair!(0, even);
            pair!(1, odd);
            pair!(2, even);
            pair!(3, odd);
            pair!(4, even);
            pair!(5, odd);
            pair!(6, even);
            pair!(7, odd);
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
                let bits: [u16; GROUP] = std::array::from_fn(|l| {
                    group.add(SIGMA[l] * bb).cast::<u16>().read_unaligned()
                });
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
                let high: [__m512i; 4] = std::array::from_fn(|i| {
                    _mm512_and_si512(_mm512_srli_epi16::<4>(t[i]), nibbles)
                });
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
    pub(super) unsafe fn dot_rows_quantized(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{quant, Rng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
    }

    #[test]
    fn isa_settings_name_levels_in_order() {
        let parse_isa = |v| parse_named(v, &ISAS, Isa::name);
        assert_eq!(parse_isa("portable"), Ok(Isa::Portable));
        assert_eq!(parse_isa("avx2"), Ok(Isa::Avx2));
        assert_eq!(parse_isa("avx512"), Ok(Isa::Avx512));
        let refused = parse_isa("AVX2").unwrap_err();
        assert!(
            refused.contains("\"AVX2\"") && refused.contains("avx512"),
            "{refused}"
        );
        // A cap is a ceiling: `min` with what the CPU has.
        assert_eq!(Isa::Avx512.min(Isa::Avx2), Isa::Avx2);
        assert!(Isa::Avx512.has_avx2() && Isa::Avx2.has_avx2() && !Isa::Portable.has_avx2());
    }

    #[test]
    fn silu_mul_matches_the_exact_function() {
        // Every magnitude from tiny to past the clamp, both signs, and a tail.
        let mut gate: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.25).collect();
        gate.extend([1e-30, -1e-30, 0.0, -0.0, 88.0, -88.0, 1e4, -1e4, 3.0]);
        let up: Vec<f32> = (0..gate.len())
            .map(|i| 1.0 + (i % 7) as f32 * 0.5)
            .collect();
        let mut out = vec![f32::NAN; gate.len()];
        silu_mul(&gate, &up, &mut out);
        for ((g, u), o) in gate.iter().zip(&up).zip(&out) {
            let (g, u) = (*g as f64, *u as f64);
            let want = g / (1.0 + (-g).exp()) * u;
            let err = (*o as f64 - want).abs();
            // Relative to the value; below 1e-30 (silu of large negative
            // inputs, where e^−x is clamped) absolute.
            assert!(
                err <= 4.0 * f32::EPSILON as f64 * want.abs() + 1e-30,
                "silu({g})·{u}: {o} vs {want}"
            );
        }
        let mut nan = [0.0f32; 8];
        silu_mul(&[f32::NAN; 8], &[1.0; 8], &mut nan);
        assert!(nan.iter().all(|v| v.is_nan()), "a NaN stays NaN");
    }

    #[test]
    fn vector_quantization_matches_the_plain_one_bit_for_bit() {
        // Exact ties (the scale is 1), NaN, ±∞, zeros, a scale too small
        // to invert (1/d = ∞), then random blocks of many magnitudes.
        let mut blocks: Vec<[f32; QUANT_BLOCK]> = Vec::new();
        let mut ties = [0.0f32; QUANT_BLOCK];
        for (i, v) in ties.iter_mut().enumerate() {
            *v = (i as f32 - 16.0) * 2.0 + 0.5;
        }
        ties[0] = 32767.0;
        ties[1] = -32766.5;
        blocks.push(ties);
        let mut special = [1.0f32; QUANT_BLOCK];
        special[3] = f32::NAN;
        blocks.push(special);
        special[5] = f32::INFINITY;
        special[6] = f32::NEG_INFINITY;
        blocks.push(special);
        blocks.push([0.0; QUANT_BLOCK]);
        blocks.push([1e-40; QUANT_BLOCK]);
        let mut rng = Rng::new(3);
        for scale in [1e-30f32, 1e-3, 1.0, 7.0, 1e4, 3e38] {
            let mut b = [0.0f32; QUANT_BLOCK];
            b.iter_mut()
                .for_each(|v| *v = scale * rng.uniform(-1.0, 1.0));
            blocks.push(b);
        }
        let x: Vec<f32> = blocks.concat();
        let n = x.len() / QUANT_BLOCK;
        /// The plain blocks and the ones `quantize_into` makes at this level.
        fn both<T: QuantValue + std::fmt::Debug + PartialEq>(x: &[f32], n: usize) -> Vec<T> {
            let plain = {
                let (mut q, mut s, mut o) = (
                    vec![T::default(); x.len()],
                    vec![0.0f32; n],
                    vec![0.0f32; n],
                );
                quantize_blocks(x, &mut q, &mut s, &mut o);
                (q, s.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), o)
            };
            let (mut q, mut s, mut o) = (
                vec![T::default(); x.len()],
                vec![0.0f32; n],
                vec![0.0f32; n],
            );
            quantize_into(x, &mut q, &mut s, &mut o);
            let bits: Vec<u32> = s.iter().map(|v| v.to_bits()).collect();
            assert_eq!(q, plain.0, "values ({})", isa().name());
            assert_eq!(bits, plain.1, "scales");
            assert_eq!(o, plain.2, "sums");
            // A block with a NaN or an infinity: zeros and a NaN scale.
            for b in 1..3 {
                assert!(
                    s[b].is_nan()
                        && q[b * QUANT_BLOCK..][..QUANT_BLOCK] == [T::default(); QUANT_BLOCK]
                );
            }
            q
        }
        let wide = both::<i16>(&x, n);
        // 0.5 and 2.5 go to 1 and 3 (ties to even would give 0 and 2).
        assert_eq!(&wide[16..18], &[1, 3], "ties round away from zero");
        assert_eq!(&wide[..2], &[32767, -32767]);
        let narrow = both::<i8>(&x, n);
        assert!(narrow.iter().all(|v| *v != i8::MIN), "symmetric: ±127");
        // The row keeps Σq as −c·Σq, and exactly one precision.
        let mut row = QuantizedRow::default();
        row.quantize(&x, DType::Q4_0, ActivationBits::Int16, false);
        assert!(row.bytes.is_empty() && row.values.len() == x.len());
        let sums: Vec<f32> = wide
            .chunks(QUANT_BLOCK)
            .map(|b| -8.0 * b.iter().map(|v| *v as i32).sum::<i32>() as f32)
            .collect();
        assert_eq!(&row.offsets[..], &sums[..]);
        row.quantize(&x, DType::Q8_0, ActivationBits::Int8, false);
        assert!(row.values.is_empty() && row.bytes.len() == x.len());
        // Alone, at the AVX-512 level, the row is laid out in step with the weights.
        row.quantize(&x, DType::Q8_0, ActivationBits::Int8, true);
        let laid_out = int8::WeightLayout::new(DType::Q8_0, x.len() / QUANT_BLOCK);
        let bytes = if int8::in_weight_layout(DType::Q8_0) {
            laid_out.planes * laid_out.plane_bytes
        } else {
            x.len()
        };
        assert!(row.values.is_empty() && row.bytes.len() == bytes);
        assert_eq!(
            row.lane_scales.is_empty(),
            !int8::in_weight_layout(DType::Q8_0)
        );
    }

    #[test]
    fn activation_settings_name_precisions() {
        let parse = |v| parse_named(v, &PRECISIONS, ActivationBits::name);
        assert_eq!(parse("int8"), Ok(ActivationBits::Int8));
        assert_eq!(parse("int16"), Ok(ActivationBits::Int16));
        let refused = parse("i8").unwrap_err();
        assert!(
            refused.contains("\"i8\"") && refused.contains("int16"),
            "{refused}"
        );
    }

    #[test]
    fn every_dot_matches_a_plain_loop_for_every_tile_size() {
        // Block counts below, at and past the sixteen-block groups, with
        // tails; 43 blocks: a whole period of the weight layout and a rest.
        for n in [32usize, 96, 320, 672, 1000, 1003, 1376, 4096] {
            // Blocks of different magnitudes (1 to 7 times), so a block
            // scaled by another block's scale is caught.
            let w: Vec<f32> = random(n, 1)
                .iter()
                .enumerate()
                .map(|(i, v)| v * (1 + (i / QUANT_BLOCK) % 7) as f32)
                .collect();
            let xs: Vec<Vec<f32>> = (0..TILE as u64).map(|s| random(n, 10 + s)).collect();
            for rows in 1..=TILE {
                let x: Vec<&[f32]> = xs[..rows].iter().map(|v| &v[..]).collect();
                let exact: Vec<f64> = x
                    .iter()
                    .map(|x| w.iter().zip(*x).map(|(a, b)| *a as f64 * *b as f64).sum())
                    .collect();
                for (dtype, tol) in [(DType::F32, 1e-4), (DType::F16, 2e-2), (DType::Bf16, 1e-1)] {
                    let bytes = quant::from_f32(dtype, &w).unwrap();
                    let mut fast = vec![0.0f32; n];
                    to_f32(dtype, &bytes, &mut fast);
                    assert_eq!(fast, quant::to_f32(dtype, &bytes, n).unwrap(), "{dtype}");
                    let mut out = [0.0f32; TILE];
                    dot_rows(dtype, &bytes, &x, &mut out);
                    for (got, want) in out.iter().zip(&exact) {
                        assert!(
                            (*got as f64 - want).abs() <= tol * (1.0 + want.abs()),
                            "{dtype} n={n} rows={rows}: {got} vs {want}"
                        );
                    }
                }
                if n % QUANT_BLOCK != 0 {
                    continue;
                }
                // A row alone in its tile too (its own layout at some levels).
                let alone: &[bool] = if rows == 1 { &[false, true] } else { &[false] };
                for (dtype, bits, alone) in [DType::Q8_0, DType::Q4_0]
                    .into_iter()
                    .flat_map(|d| [(d, ActivationBits::Int8), (d, ActivationBits::Int16)])
                    .flat_map(|(d, b)| alone.iter().map(move |a| (d, b, *a)))
                {
                    let quantized: Vec<QuantizedRow> = x
                        .iter()
                        .map(|x| {
                            let mut q = QuantizedRow::default();
                            q.quantize(x, dtype, bits, alone);
                            q
                        })
                        .collect();
                    let qrefs: Vec<&QuantizedRow> = quantized.iter().collect();
                    // Three weight rows (w, w reversed, w halved), each
                    // followed by one unused block of NaN scales and
                    // nonzero weights: a stride past the row, whose bytes
                    // must not enter the products.
                    let row_bytes = dtype.bytes_for(n);
                    let stride = row_bytes + dtype.block_bytes();
                    let mut bytes = vec![0xffu8; 3 * stride];
                    let mut deq = Vec::new();
                    let reversed: Vec<f32> = w.iter().rev().copied().collect();
                    let halved: Vec<f32> = w.iter().map(|v| 0.5 * v).collect();
                    for (i, row) in [&w, &reversed, &halved].into_iter().enumerate() {
                        let packed = quant::from_f32(dtype, row).unwrap();
                        bytes[i * stride..i * stride + row_bytes].copy_from_slice(&packed);
                        deq.push(quant::to_f32(dtype, &packed, n).unwrap());
                        let mut fast = vec![0.0f32; n];
                        to_f32(dtype, &packed, &mut fast);
                        assert_eq!(fast, deq[i], "{dtype} n={n}: to_f32");
                    }
                    let weights = WeightRows {
                        bytes: &bytes,
                        stride,
                        count: 3,
                    };
                    let out_stride = TILE + 1;
                    let mut out = vec![f32::NAN; 3 * out_stride];
                    dot_rows_quantized(dtype, &weights, &qrefs, &mut out, out_stride);
                    for (i, deq) in deq.iter().enumerate() {
                        for (r, x) in x.iter().enumerate() {
                            // Against the dequantized weights and the f32
                            // activations: off by at most each activation's
                            // rounding, half its block's step, per weight.
                            let want: f64 =
                                deq.iter().zip(*x).map(|(a, b)| *a as f64 * *b as f64).sum();
                            let rounding: f64 = deq
                                .chunks(QUANT_BLOCK)
                                .zip(quantized[r].scales.iter())
                                .map(|(w, d)| {
                                    0.5 * *d as f64 * w.iter().map(|v| v.abs() as f64).sum::<f64>()
                                })
                                .sum();
                            let got = out[i * out_stride + r];
                            assert!(
                                (got as f64 - want).abs() <= rounding + 1e-3 * (1.0 + want.abs()),
                                "{dtype} {bits:?} n={n} rows={rows} alone={alone} weight row {i}: {got} vs {want}"
                            );
                        }
                        // Nothing written past the activation rows.
                        assert!(out[i * out_stride + x.len()..(i + 1) * out_stride]
                            .iter()
                            .all(|v| v.is_nan()));
                    }
                }
            }
        }
    }
}
