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
//!
//! Files: `mod.rs` (the level in use, its settings, dispatch and the
//! shared row types), `portable.rs`, `avx2.rs`, `avx512.rs`, `int8.rs` (the
//! order and layout of int8 activation rows), `attend.rs` (decode attention
//! in registers), `tests.rs` (every level against the portable one).

use std::sync::OnceLock;

pub(crate) use glmhal_hal::ActivationBits;
use glmhal_hal::{CpuIsa, DType, QUANT_BLOCK};

use super::scratch::Scratch;

pub(crate) mod attend;
mod int8;
mod portable;
#[cfg(test)]
mod tests;

use portable::{dot_row_portable, weight};

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

    /// The name settings and the device report use.
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

impl From<CpuIsa> for Isa {
    fn from(level: CpuIsa) -> Self {
        match level {
            CpuIsa::Portable => Isa::Portable,
            CpuIsa::Avx2 => Isa::Avx2,
            CpuIsa::Avx512 => Isa::Avx512,
        }
    }
}

/// What the kernels dispatch on for the whole process: the kernels run
/// without a backend in hand, so the first CPU backend opened fixes them
/// ([`configure`]); until then they are the defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Settings {
    /// The instruction-set level in use.
    level: Isa,
    /// How Q8_0/Q4_0 products quantize their activations.
    bits: ActivationBits,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The level the kernels use under `cap`: a cap is a ceiling on what the
/// CPU has, so a machine with AVX-512 can check its AVX2 and portable paths.
pub(crate) fn level_under(cap: Option<CpuIsa>) -> Isa {
    let detected = Isa::detected();
    cap.map_or(detected, |c| Isa::from(c).min(detected))
}

fn settings() -> Settings {
    *SETTINGS.get_or_init(default_settings)
}

/// The best level the CPU has, int8 activations.
#[cfg(not(test))]
fn default_settings() -> Settings {
    Settings {
        level: Isa::detected(),
        bits: ActivationBits::default(),
    }
}

/// Unit tests run at the level and precision CI asks for, as the
/// conformance tests do, so each level's kernels are checked against the
/// portable ones.
#[cfg(test)]
fn default_settings() -> Settings {
    let options = &glmhal_conformance::testing::test_options().cpu;
    Settings {
        level: level_under(options.isa),
        bits: options.activations,
    }
}

/// Fixes the kernels' level (under `cap`) and activation precision for the
/// process; asking for others once they are fixed is refused with both named.
pub(crate) fn configure(cap: Option<CpuIsa>, bits: ActivationBits) -> Result<(), String> {
    let wanted = Settings {
        level: level_under(cap),
        bits,
    };
    let fixed = *SETTINGS.get_or_init(|| wanted);
    if fixed == wanted {
        return Ok(());
    }
    Err(format!(
        "the CPU kernels of this process already run {} with {} activations; {} with {} cannot be opened beside them",
        fixed.level.name(),
        fixed.bits.name(),
        wanted.level.name(),
        wanted.bits.name()
    ))
}

/// The instruction-set level the kernels use.
pub(crate) fn isa() -> Isa {
    settings().level
}

/// Whether the kernels may use AVX-512 BF16 (`vdpbf16ps`, two bf16
/// products per f32 lane): the level in use is AVX-512 and the CPU has it.
pub(crate) fn has_avx512_bf16() -> bool {
    has_avx512_bf16_at(isa())
}

/// Whether `level` would use AVX-512 BF16 on this CPU.
pub(crate) fn has_avx512_bf16_at(level: Isa) -> bool {
    static BF16: OnceLock<bool> = OnceLock::new();
    level == Isa::Avx512
        && *BF16.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                is_x86_feature_detected!("avx512bf16")
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                false
            }
        })
}

/// How the Q8_0/Q4_0 products quantize their activations.
pub(crate) fn activation_bits() -> ActivationBits {
    settings().bits
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

// After the macros above, which the vector modules use.
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::sum8;
