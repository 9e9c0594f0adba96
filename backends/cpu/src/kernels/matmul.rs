//! mat_mul and batched_mat_mul.
//!
//! For a few rows of activations (decode) weights whose rows are packed are
//! read as stored by the dot products of [`super::simd`] (Q8_0/Q4_0 rows
//! against activations quantized once to int8 or int16 blocks, f16/bf16/f32 rows
//! converted in registers), each weight row read once for all of them;
//! other views dequantize a row at a time. Many rows (prefill) go to the
//! register-blocked GEMM of [`super::gemm`], except Q4_0 weights (AVX2 and
//! up) and Q8_0 weights (AVX-512 VNNI) with int8 activations, which
//! [`super::gemm_int8`] multiplies in 8-bit integers.

use glmhal_hal::{ActivationQuant, DType, Result, TensorDesc};
use rayon::prelude::*;
use smallvec::SmallVec;

use super::columns::Columns;
use super::simd::{self, QuantizedRow, TILE};
use super::{f32_bytes, gemm, gemm_int8, In, Out, Scratch};

/// Weight rows handled by one task: enough work to amortize scheduling.
const ROWS_PER_TASK: usize = 8;
/// Activation rows up to which weights are dotted as stored (each weight
/// row read once per tile of activations); above, the GEMM converts a
/// panel of weights once and reuses it across every activation row.
pub(super) const FUSED_MAX_ROWS: usize = 2 * TILE;

/// How a weight row is multiplied with the activations.
// One per product, on the stack: the quantized rows live inline so that a
// decode product does not allocate.
#[allow(clippy::large_enum_variant)]
enum Rows {
    /// Packed quantized rows against quantized activations.
    Quantized(DType, SmallVec<[QuantizedRow; FUSED_MAX_ROWS]>),
    /// Packed float rows dotted as stored.
    Fused(DType),
    /// Any view: each row converted to f32 first.
    Converted,
}

pub(super) fn matmul(
    x: &In<'_>,
    w: &In<'_>,
    bias: Option<&In<'_>>,
    out: &mut Out<'_>,
) -> Result<()> {
    let (m, k) = (x.desc.shape[0], x.desc.shape[1]);
    let n = w.desc.shape[0];
    let xs = x.f32s();
    out.fill_f32(m * n, |result| product(&xs, k, w, bias, result, m, n));
    Ok(())
}

/// What [`product`] does with the activations `x` of a product with `w`:
/// quantized to blocks where an integer kernel runs it (as it dispatches).
pub(crate) fn activation_quant(x: &TensorDesc, w: &TensorDesc) -> ActivationQuant {
    let m = x.shape[0];
    if !w.dtype.is_quantized() {
        ActivationQuant::AsStored
    } else if m > FUSED_MAX_ROWS {
        if gemm_int8::applies_to(w) {
            ActivationQuant::Int8Blocks
        } else {
            ActivationQuant::AsStored
        }
    } else if w.rows_contiguous() {
        match simd::activation_bits() {
            simd::ActivationBits::Int8 => ActivationQuant::Int8Blocks,
            simd::ActivationBits::Int16 => ActivationQuant::Int16Blocks,
        }
    } else {
        ActivationQuant::AsStored
    }
}

/// Whether [`product`] of `m` activation rows with `w` rounds the
/// activations to bf16 (the GEMM's bf16 pairs).
pub(crate) fn rounds_activations_to_bf16(m: usize, w: &TensorDesc) -> bool {
    m > FUSED_MAX_ROWS && gemm::rounds_activations_to_bf16(w)
}

/// `result = xs · wᵀ (+ bias)` as `[m, n]` f32; every value is written.
pub(super) fn product(
    xs: &[f32],
    k: usize,
    w: &In<'_>,
    bias: Option<&In<'_>>,
    result: &mut [f32],
    m: usize,
    n: usize,
) {
    {
        let columns = Columns::new(result, m, n);
        if m > FUSED_MAX_ROWS && gemm_int8::applies(w) {
            gemm_int8::gemm(xs, k, w, &columns);
        } else if m > FUSED_MAX_ROWS {
            gemm::gemm(xs, k, w, &columns);
        } else {
            few_rows(xs, k, w, &columns);
        }
    }
    if let Some(bias) = bias {
        let bias = bias.f32s();
        result.par_chunks_mut(n).for_each(|row| {
            for (o, b) in row.iter_mut().zip(bias.iter()) {
                *o += b;
            }
        });
    }
}

/// `out = x · wᵀ` for at most [`FUSED_MAX_ROWS`] activation rows.
fn few_rows(xs: &[f32], k: usize, w: &In<'_>, out: &Columns<'_>) {
    let (m, n) = (out.rows(), w.desc.shape[0]);
    // On the stack: at most FUSED_MAX_ROWS rows, two tiles.
    let x_rows: SmallVec<[&[f32]; FUSED_MAX_ROWS]> = xs.chunks_exact(k).collect();
    let packed = w.desc.rows_contiguous();
    let rows = match w.desc.dtype {
        d if d.is_quantized() && packed => Rows::Quantized(
            d,
            x_rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    // The last row is alone in its tile when m is one past a
                    // whole number of tiles (decode: m = 1).
                    let alone = m % TILE == 1 && i == m - 1;
                    let mut q = QuantizedRow::default();
                    q.quantize(row, d, simd::activation_bits(), alone);
                    q
                })
                .collect(),
        ),
        d @ (DType::F32 | DType::F16 | DType::Bf16) if packed => Rows::Fused(d),
        _ => Rows::Converted,
    };
    // Tiles of quantized activation rows, made once (not per weight row).
    let q_tiles: SmallVec<[SmallVec<[&QuantizedRow; TILE]>; 2]> = match &rows {
        Rows::Quantized(_, qs) => qs.chunks(TILE).map(|t| t.iter().collect()).collect(),
        _ => SmallVec::new(),
    };
    let row_bytes = w.desc.dtype.bytes_for(k);
    // w is [N, K] (validated): row j starts j·strides[0] elements in.
    let row_stride = w.desc.strides[0];
    // Bytes from one weight row to the next (whole blocks for quantized rows).
    let stride_bytes = w.desc.byte_at(row_stride) - w.desc.byte_at(0);
    let row_of = |j: usize| {
        let at = w.desc.byte_at(j * row_stride);
        &w.bytes[at..at + row_bytes]
    };
    let x_tiles: SmallVec<[&[&[f32]]; 2]> = x_rows.chunks(TILE).collect();
    // Each task: a few weight rows (output columns) against every activation row.
    (0..n.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .for_each_init(
            // Scratch only where rows are converted: rayon calls this once
            // per piece of work it splits off, every product.
            || match rows {
                Rows::Converted => vec![0.0f32; ROWS_PER_TASK * k],
                _ => Vec::new(),
            },
            |converted, task| {
                let j0 = task * ROWS_PER_TASK;
                let here = ROWS_PER_TASK.min(n - j0);
                // This task's outputs, weight row by weight row, on the stack.
                let mut block = [0.0f32; ROWS_PER_TASK * FUSED_MAX_ROWS];
                if let Rows::Converted = rows {
                    for (jj, dst) in converted.chunks_exact_mut(k).take(here).enumerate() {
                        w.read_row(j0 + jj, dst);
                    }
                }
                for (t, tile) in x_tiles.iter().enumerate() {
                    let start = t * TILE;
                    if let Rows::Quantized(d, _) = &rows {
                        // Every weight row of the task in one call.
                        let weights = simd::WeightRows {
                            bytes: &w.bytes[w.desc.byte_at(j0 * row_stride)..],
                            stride: stride_bytes,
                            count: here,
                        };
                        let outs = &mut block[start..];
                        simd::dot_rows_quantized(*d, &weights, &q_tiles[t], outs, m);
                        continue;
                    }
                    for jj in 0..here {
                        let outs = &mut block[jj * m + start..jj * m + start + tile.len()];
                        let (dtype, row) = match &rows {
                            Rows::Fused(d) => (*d, row_of(j0 + jj)),
                            _ => (DType::F32, f32_bytes(&converted[jj * k..(jj + 1) * k])),
                        };
                        simd::dot_rows(dtype, row, tile, outs);
                    }
                }
                // SAFETY: this task alone owns columns j0..j0 + here.
                unsafe { out.set_columns(j0, here, &block, m) };
            },
        );
}

pub(super) fn batched(a: &In<'_>, b: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    let (m, k) = (a.desc.shape[1], a.desc.shape[2]);
    let n = b.desc.shape[2];
    let (av, bv) = (a.to_f32(), b.to_f32());
    let mut result = Scratch::filled(a.desc.shape[0] * m * n, 0.0f32);
    // Row form (out_row += a[p] * b_row_p) keeps every access contiguous.
    result.par_chunks_mut(n).enumerate().for_each(|(zi, row)| {
        let z = zi / m;
        let arow = &av[zi * k..(zi + 1) * k];
        for (p, ap) in arow.iter().enumerate() {
            let brow = &bv[(z * k + p) * n..(z * k + p + 1) * n];
            for (o, bj) in row.iter_mut().zip(brow) {
                *o += ap * bj;
            }
        }
    });
    out.store(&result);
    Ok(())
}
