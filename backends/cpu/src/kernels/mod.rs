//! CPU kernels, one file per op family. Each works on byte slices of the
//! views it was given, converts rows to f32 scratch, computes in f32 with
//! several accumulators, and parallelises over output rows with rayon.

mod activation;
pub(crate) mod attention;
mod columns;
mod convert;
mod elementwise;
mod embedding;
mod gemm;
mod gemm_int8;
mod kv_cache;
pub(crate) mod matmul;
mod norm;
mod reduce;
mod rope;
mod scratch;
pub(crate) mod simd;

use glmhal_hal::{quant, DType, HalError, Op, Result, TensorDesc};
use rayon::prelude::*;

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
