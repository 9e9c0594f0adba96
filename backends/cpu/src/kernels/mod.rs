//! CPU kernels, one file per op family. Each works on byte slices of the
//! views it was given, converts rows to f32 scratch, computes in f32 with
//! several accumulators, and parallelises over output rows with rayon.
//!
//! ## Design
//!
//! The CPU's `kernels/engine/simd/` holds its dot products, chosen once at run time by CPU feature:
//! AVX-512 (F, BW, VL and VNNI, with AVX2 + FMA + F16C), AVX2 + FMA + F16C, or a portable path.
//! `CpuOptions::isa` (`GLMHAL_CPU_ISA=portable|avx2|avx512`) caps the level (so an AVX-512 machine checks its AVX2
//! and portable kernels too; any other value makes the CPU backend unavailable with the
//! reason), and `glmhal devices` names the level in use. Weight rows are read as stored
//! (f16/bf16 converted in registers; Q8_0/Q4_0 multiplied in integers against activations
//! quantized once per product, 16 lanes at a time on AVX-512, to blocks of 32 int8, as
//! llama.cpp does, or with `GLMHAL_CPU_ACTIVATIONS=int16` to int16) for tiles of up to four
//! activation rows, every weight row of a task in one call, requesting weights 32 KiB ahead of
//! the bytes they multiply, into L2 (the int16 Q4_0 VNNI product: 8 KiB ahead, non-temporal).
//! Q4_0 nibbles and (in the AVX-512 int8 product) Q8_0 bytes offset by 128 are multiplied as
//! unsigned bytes, the offset coming back through each activation block's precomputed `−c·Σq`;
//! weight scales are converted eight (AVX2) or sixteen (AVX-512) blocks at a time. With int8
//! activations AVX2 takes one `maddubs` per block (Q8_0 with the weights' signs moved onto the
//! activations). On AVX-512 VNNI a row alone in its tile (decode) is laid out in step with the
//! weight rows' bytes (`engine/simd/int8.rs`): 64 weight bytes as loaded, scales included,
//! meet the activation bytes at the same offsets (zeros under the scales) in one `vpdpbusd`
//! (two for Q4_0's nibbles); a block's scale being two bytes, every 32-bit lane then holds a
//! sum within one block, started from that lane's share of `−c·Σq`, and one FMA per 64 bytes
//! scales each lane by its block's weight scale (sixteen half-precision words taken from this
//! and the previous 64 bytes by one `vpermt2w`) times its activation scale. Several rows take
//! one `vpdpbusd` per pair of Q8_0 blocks, and for Q4_0 load sixteen blocks as four vectors,
//! transpose their 32-bit words within each 128-bit lane and multiply them with activations
//! stored in that transposed order, so eight `vpdpbusd` leave each block's whole product in its
//! own lane and one FMA per sixteen blocks and row applies the scales: cheaper per activation
//! row, dearer per weight row. With int16 activations Q8_0 on AVX-512 takes one `madd` of 32
//! int16 pairs per block and row; Q4_0 on AVX-512 VNNI two blocks per vector: the activations
//! are also split into high and low byte planes (`q = 256·high + low`) in the order the two
//! blocks' nibbles unpack to, and two `vpdpbusd` give the exact int32 products. It also
//! converts rows of any packed dtype to f32 (F16C, integer widening). Up to eight activation
//! rows (decode) use those dot products; more (prefill) go to `engine/gemm.rs`: each task
//! converts a panel of 12 weight rows × 512 columns to f32 once (dequantizing Q8_0/Q4_0
//! exactly; rows one cache line further apart than their length, so they do not share L1 sets)
//! and multiplies it with activations packed in blocks of 16 rows (32 on AVX-512), a register
//! tile of FMAs with broadcast weights (6×16 on AVX2, 12×32 on AVX-512: 24 accumulators),
//! prefetching the next panel (or the next task's first one) while it computes: each tile asks
//! for its share from a cursor, one cache line every few steps of its depth loop. BF16 weights
//! with AVX-512 BF16 stay bf16 in the panel and meet activations rounded to bf16 and packed in
//! pairs along the depth: `vdpbf16ps` makes two products per f32 lane (`glmhal devices` says
//! when this path is on). Q4_0 weights on AVX2 and AVX-512, and Q8_0 weights on AVX-512 VNNI,
//! take `engine/gemm_int8.rs` instead while activations are int8 (the default of
//! `GLMHAL_CPU_ACTIVATIONS`): activations quantized once to 8-bit blocks (as llama.cpp does),
//! each task's panel of weight rows unpacked to one unsigned byte per weight (Q4_0 nibbles,
//! Q8_0 bytes plus 128) and transposed so that lane `l` of every 512-bit vector belongs to
//! block `l` of a group of sixteen. AVX-512 VNNI's `vpdpbusd` multiplies 64 weight bytes by 64
//! activation bytes into the sixteen blocks' sums, which start at each activation block's
//! `−c·Σq` (`c` = 8 or 128, the weights' offset); one FMA per group applies the sixteen blocks'
//! scales. AVX2 (Q4_0 only) reads each group as two halves of eight blocks: `maddubs` makes 32
//! products per instruction, sums of eight of them stay in int16, and its inner step is a few
//! lines of assembly (2 weight × 6 activation rows, twelve accumulators held in registers). All
//! three write their column range of the `[M, N]` result in place (`engine/columns.rs`).
//!
//! The CPU backend keeps buffers as aligned, lazily zeroed host allocations; its queue lock
//! serializes every access, and `check_views` guarantees that outputs overlap neither inputs
//! nor each other, which is what lets a kernel borrow input bytes shared and output bytes
//! exclusively. Kernels convert rows to f32 scratch, or read contiguous f32 tensors in place
//! and write contiguous f32 outputs directly (dequantizing Q8_0/Q4_0 a row at a time, never the
//! whole weight; decode attention reads keys and values as stored in the cache, never copying
//! it, in tasks of 256 positions whose softmax sums are merged after (so long contexts use
//! every core): with AVX-512 one task takes every KV head of its positions and all their query
//! heads, the rows converted and the outputs held in registers (`engine/simd/attend.rs`), elsewhere
//! one KV head's query group with a dot-product call per key row and one value row converted at
//! a time; attention over nine or more queries, a prompt, runs per head as two products on the
//! GEMM: `Q·Kᵀ`, a causal softmax, then `P·V` with the head's values transposed once, each
//! block of queries against only the positions it sees), compute in f32 with several
//! accumulators, and parallelize over output rows on a rayon pool sized by `CpuOptions::threads`
//! or the core count. `execute_step` runs the whole step on a pool worker, so each op is a
//! direct call rather than a hand-off to the pool. Kernel buffers (inputs converted to f32,
//! results, quantized activations) come from `engine/scratch.rs`, a process-wide pool per
//! element type (best fit, byte budget), and validation reads a catalogue built once, so after
//! the first steps an op allocates nothing. The executor's per-step lists (graph, plan, op list
//! storage, result bytes) live in the `Workspace` and are rebuilt in place, so a decode step
//! allocates nothing at all but rayon's queue block every 63 steps, which
//! `model/tests/allocations.rs` checks.

mod activation;
pub(crate) mod attention;
mod convert;
mod elementwise;
mod embedding;
mod engine;
pub(crate) mod experts;
mod kv_cache;
pub(crate) mod matmul;
mod norm;
mod reduce;
mod rope;

use glmhal_hal::{quant, DType, HalError, Op, Result, TensorDesc};
use rayon::prelude::*;

pub(crate) use engine::{columns, gemm, gemm_int8, scratch, simd};
use scratch::Scratch;

/// An input view: its descriptor (offset relative to `bytes`) and the bytes it spans.
pub(crate) struct In<'a> {
    pub desc: TensorDesc,
    pub bytes: &'a [u8],
}

/// An output view: as [`In`], writable.
pub(crate) struct Out<'a> {
    pub desc: TensorDesc,
    pub bytes: &'a mut [u8],
}

/// Runs one op. Shapes and dtypes were validated by the caller.
pub(crate) fn run(op: &Op, ins: &[In<'_>], out: &mut Out<'_>) -> Result<()> {
    match op {
        Op::GetRows => embedding::get_rows(&ins[0], &ins[1], out),
        Op::MatMul { .. } => matmul::matmul(&ins[0], &ins[1], ins.get(2), out),
        Op::BatchedMatMul => matmul::batched(&ins[0], &ins[1], out),
        Op::RmsNorm { eps } => norm::rms_norm(&ins[0], &ins[1], *eps, out),
        Op::LayerNorm { eps } => norm::layer_norm(&ins[0], &ins[1], &ins[2], *eps, out),
        Op::Rope { rot, theta, mode } => rope::rope(&ins[0], &ins[1], *rot, *theta, *mode, out),
        Op::Attention { scale, causal } => {
            attention::attention(&ins[0], &ins[1], &ins[2], *scale, *causal, out)
        }
        Op::Softmax { scale, causal } => reduce::softmax(&ins[0], *scale, *causal, out),
        Op::Argmax => reduce::argmax(&ins[0], out),
        Op::SwiGlu => activation::swiglu(&ins[0], out),
        Op::Silu => activation::map(&ins[0], out, activation::silu),
        Op::Gelu => activation::map(&ins[0], out, activation::gelu),
        Op::Scale { factor } => {
            let f = *factor as f32;
            activation::map(&ins[0], out, move |x| x * f)
        }
        Op::Add => elementwise::broadcast(&ins[0], &ins[1], out, |a, b| a + b),
        Op::Mul => elementwise::broadcast(&ins[0], &ins[1], out, |a, b| a * b),
        Op::Cast => convert::cast(&ins[0], out),
        Op::Quantize => convert::quantize(&ins[0], out),
        Op::KvWrite => kv_cache::write(&ins[0], &ins[1], out),
        Op::MatMulId => experts::mat_mul_id(&ins[0], &ins[1], &ins[2], out),
        Op::MoeSelect {
            top_k,
            n_group,
            topk_group,
        } => experts::moe_select(&ins[0], &ins[1], (*top_k, *n_group, *topk_group), out),
        Op::MoeWeights { normalize, scale } => {
            experts::moe_weights(&ins[0], &ins[1], (*normalize, *scale), out)
        }
    }
}

impl In<'_> {
    /// Reads logical row `row` (the last dimension) into `dst` as f32.
    pub fn read_row(&self, row: usize, dst: &mut [f32]) {
        self.read_row_from(row, 0, dst);
    }

    /// Reads columns `col..col + dst.len()` of logical row `row` into `dst`
    /// as f32 (for quantized rows `col` is a multiple of the block size).
    pub fn read_row_from(&self, row: usize, col: usize, dst: &mut [f32]) {
        let d = &self.desc;
        let step = d.strides.last().copied().unwrap_or(1);
        let start = d.row_start(row) + col * step;
        if d.dtype.is_quantized() {
            let at = d.byte_at(start);
            simd::to_f32(
                d.dtype,
                &self.bytes[at..at + d.dtype.bytes_for(dst.len())],
                dst,
            );
            return;
        }
        let esize = d.dtype.block_bytes();
        if step == 1 {
            let at = d.byte_at(start);
            simd::to_f32(d.dtype, &self.bytes[at..at + esize * dst.len()], dst);
            return;
        }
        for (c, o) in dst.iter_mut().enumerate() {
            let at = d.offset + (start + c * step) * esize;
            *o = quant::read_scalar(d.dtype, &self.bytes[at..at + esize], 0);
        }
    }

    /// The view as f32 in logical order: its own bytes when it is a
    /// contiguous f32 view, else converted ([`In::to_f32`]).
    pub fn f32s(&self) -> F32s<'_> {
        let d = &self.desc;
        let span = d.offset..d.offset + 4 * d.numel();
        match contiguous_f32(d, &self.bytes[span.start.min(self.bytes.len())..]) {
            Some(values) => F32s::View(values),
            None => F32s::Converted(self.to_f32()),
        }
    }

    /// The whole view as contiguous f32 in logical order (rows in parallel).
    pub fn to_f32(&self) -> Scratch<f32> {
        let cols = self.desc.last_dim();
        let mut out = Scratch::filled(self.desc.numel(), 0.0f32);
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(r, row)| self.read_row(r, row));
        out
    }

    /// The i32 tensor's values as indices, each checked to lie below
    /// `bound` (the error names `op` and `what`).
    pub fn indices(&self, op: &str, what: &str, bound: usize) -> Result<Scratch<usize>> {
        let mut out = Scratch::empty();
        for &v in self.to_i32().iter() {
            out.push(checked_index(op, what, v, bound)?);
        }
        Ok(out)
    }

    /// The whole view of an i32 tensor in logical order.
    pub fn to_i32(&self) -> Scratch<i32> {
        let d = &self.desc;
        let step = d.strides.last().copied().unwrap_or(1);
        let mut out = Scratch::empty();
        for r in 0..d.rows() {
            let start = d.row_start(r);
            for c in 0..d.last_dim() {
                let at = d.offset + (start + c * step) * 4;
                let b = &self.bytes[at..at + 4];
                out.push(i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            }
        }
        out
    }
}

impl Out<'_> {
    /// Has `fill` write the output's `len` values in logical order: into
    /// the output itself when it is a contiguous f32 view (the usual case:
    /// no copy), else into scratch converted on the way out.
    pub fn fill_f32(&mut self, len: usize, fill: impl FnOnce(&mut [f32])) {
        if let Some(values) = self.f32s_mut() {
            fill(values);
            return;
        }
        let mut values = Scratch::filled(len, 0.0f32);
        fill(&mut values);
        self.store(&values);
    }

    /// The output's values in logical order when it is a contiguous f32
    /// view, so a kernel can write its result in place instead of building
    /// it in scratch and copying it with [`Out::store`].
    pub fn f32s_mut(&mut self) -> Option<&mut [f32]> {
        let d = &self.desc;
        if !(d.dtype == DType::F32 && d.is_contiguous()) {
            return None;
        }
        let bytes = self.bytes.get_mut(d.offset..d.offset + 4 * d.numel())?;
        // SAFETY: every bit pattern is an f32; the slices only split the
        // bytes, and the result is used only when nothing is left over.
        let (head, values, tail) = unsafe { bytes.align_to_mut::<f32>() };
        (head.is_empty() && tail.is_empty()).then_some(values)
    }

    /// Writes `src` as logical row `row`, rounding to the output dtype.
    pub fn write_row(&mut self, row: usize, src: &[f32]) {
        let d = &self.desc;
        let start = d.row_start(row);
        let step = d.strides.last().copied().unwrap_or(1);
        let esize = d.dtype.block_bytes();
        if d.dtype == DType::F32 && (step == 1 || src.len() == 1) {
            let at = d.byte_at(start);
            for (b, v) in self.bytes[at..at + 4 * src.len()]
                .chunks_exact_mut(4)
                .zip(src)
            {
                b.copy_from_slice(&v.to_le_bytes());
            }
            return;
        }
        for (c, v) in src.iter().enumerate() {
            let at = d.offset + (start + c * step) * esize;
            quant::write_scalar(d.dtype, &mut self.bytes[at..at + esize], 0, *v);
        }
    }

    /// Writes all values (logical order), one row at a time.
    pub fn store(&mut self, values: &[f32]) {
        let cols = self.desc.last_dim();
        for (r, row) in values.chunks_exact(cols).enumerate() {
            self.write_row(r, row);
        }
    }

    /// Writes i32 values (logical order) into an i32 view.
    pub fn store_i32(&mut self, values: &[i32]) {
        let d = &self.desc;
        let step = d.strides.last().copied().unwrap_or(1);
        let cols = d.last_dim();
        for (i, v) in values.iter().enumerate() {
            let at = d.offset + (d.row_start(i / cols) + (i % cols) * step) * 4;
            self.bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }

    /// The packed bytes of logical row `row` (quantized outputs, whose rows are contiguous).
    pub fn row_bytes_mut(&mut self, row: usize) -> &mut [u8] {
        let d = &self.desc;
        let at = d.byte_at(d.row_start(row));
        let len = d.dtype.bytes_for(d.last_dim());
        &mut self.bytes[at..at + len]
    }
}

/// f32 values of an input: borrowed from its bytes, or converted into scratch.
pub(crate) enum F32s<'a> {
    /// A contiguous f32 view, read in place.
    View(&'a [f32]),
    /// Any other view, converted.
    Converted(Scratch<f32>),
}

impl std::ops::Deref for F32s<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            F32s::View(v) => v,
            F32s::Converted(v) => v,
        }
    }
}

/// The first `numel` f32 of `bytes` when `desc` is a contiguous f32 view
/// starting there and the bytes are aligned for f32 (little-endian targets).
fn contiguous_f32<'a>(desc: &TensorDesc, bytes: &'a [u8]) -> Option<&'a [f32]> {
    if !(desc.dtype == DType::F32 && desc.is_contiguous()) {
        return None;
    }
    let bytes = bytes.get(..4 * desc.numel())?;
    // SAFETY: every bit pattern is an f32; used only when nothing is left over.
    let (head, values, tail) = unsafe { bytes.align_to::<f32>() };
    (head.is_empty() && tail.is_empty()).then_some(values)
}

/// The bytes of an f32 slice (little-endian targets), for the byte-reading dot products.
pub(crate) fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: any f32 slice is a valid byte slice of 4× its length; u8 has no alignment.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

/// The bytes of an f32 slice, writable (every bit pattern is an f32).
pub(crate) fn f32_bytes_mut(v: &mut [f32]) -> &mut [u8] {
    // SAFETY: as in `f32_bytes`, and the borrow is unique; any byte values
    // make valid f32.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

/// Checks an index read from a device tensor before it is used.
pub(crate) fn checked_index(op: &str, what: &str, value: i32, bound: usize) -> Result<usize> {
    if value < 0 || value as usize >= bound {
        return Err(HalError::invalid(
            op,
            format!("{what} {value} is outside 0..{bound}"),
        ));
    }
    Ok(value as usize)
}

#[cfg(test)]
pub(crate) mod strided_weights {
    //! The weight-view check the products share: rows taken every `STRIDE`
    //! values after one block must multiply as their compact copy does.

    use glmhal_hal::{quant, DType, Rng, TensorDesc};

    use super::In;

    /// Weight rows and their length.
    pub const N: usize = 7;
    /// Values per weight row.
    pub const K: usize = 64;
    /// Values from one row's start to the next in the strided storage.
    const STRIDE: usize = 96;

    /// Asserts that `product` gives identical results for `N × K` weights of
    /// `dtype` read through a strided view (rows `STRIDE` apart, one block
    /// of offset) and through a compact copy of the same rows.
    pub fn match_compact_copy(dtype: DType, rng: &mut Rng, product: impl Fn(&In<'_>) -> Vec<f32>) {
        let all: Vec<f32> = (0..32 + N * STRIDE)
            .map(|_| rng.uniform(-1.0, 1.0))
            .collect();
        let storage = quant::from_f32(dtype, &all).unwrap();
        let rows: Vec<f32> = (0..N)
            .flat_map(|j| all[32 + j * STRIDE..32 + j * STRIDE + K].to_vec())
            .collect();
        let compact = quant::from_f32(dtype, &rows).unwrap();
        let strided = In {
            desc: TensorDesc::strided(dtype, &[N, K], &[STRIDE, 1], dtype.bytes_for(32)),
            bytes: &storage,
        };
        let packed = In {
            desc: TensorDesc::contiguous(dtype, &[N, K]),
            bytes: &compact,
        };
        assert_eq!(product(&strided), product(&packed), "{dtype}");
    }
}
