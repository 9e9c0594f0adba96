//! mat_mul and batched_mat_mul.
//!
//! For a few rows of activations (decode) weights whose rows are packed are
//! read as stored by the dot products of [`super::simd`] (Q8_0/Q4_0 rows
//! against activations quantized once to int16 blocks, f16/bf16/f32 rows
//! converted in registers), each weight row read once for all of them;
//! other views dequantize a row at a time. Many rows (prefill) go to the
//! register-blocked GEMM of [`super::gemm`].

use glmhal_hal::{DType, Result};
use rayon::prelude::*;

use super::simd::{self, QuantizedRow, TILE};
use super::{gemm, In, Out};

/// Weight rows handled by one task: enough work to amortize scheduling.
const ROWS_PER_TASK: usize = 8;
/// Activation rows up to which weights are dotted as stored (each weight
/// row read once per tile of activations); above, the GEMM converts a
/// panel of weights once and reuses it across every activation row.
const FUSED_MAX_ROWS: usize = 2 * TILE;

/// How a weight row is multiplied with the activations.
enum Rows {
    /// Packed quantized rows against quantized activations.
    Quantized(DType, Vec<QuantizedRow>),
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
    let xs = x.to_f32();
    let out_t = if m > FUSED_MAX_ROWS {
        gemm::gemm_transposed(&xs, m, k, w, n)
    } else {
        few_rows_transposed(&xs, m, k, w, n)
    };
    let bias = bias.map(|b| b.to_f32());
    let mut result = vec![0.0f32; m * n];
    result.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (j, o) in row.iter_mut().enumerate() {
            *o = out_t[j * m + i] + bias.as_ref().map_or(0.0, |b| b[j]);
        }
    });
    out.store(&result);
    Ok(())
}

/// `x · wᵀ` for at most [`FUSED_MAX_ROWS`] activation rows, transposed as
/// [`gemm::gemm_transposed`]'s result.
fn few_rows_transposed(xs: &[f32], m: usize, k: usize, w: &In<'_>, n: usize) -> Vec<f32> {
    let x_rows: Vec<&[f32]> = xs.chunks_exact(k).collect();
    let packed = w.desc.rows_contiguous();
    let rows = match w.desc.dtype {
        d if d.is_quantized() && packed => Rows::Quantized(
            d,
            x_rows
                .iter()
                .map(|row| {
                    let mut q = QuantizedRow::default();
                    q.quantize(row);
                    q
                })
                .collect(),
        ),
        d @ (DType::F32 | DType::F16 | DType::Bf16) if packed => Rows::Fused(d),
        _ => Rows::Converted,
    };
    // Tiles of quantized activation rows, made once (not per weight row).
    let q_tiles: Vec<Vec<&QuantizedRow>> = match &rows {
        Rows::Quantized(_, qs) => qs.chunks(TILE).map(|t| t.iter().collect()).collect(),
        _ => Vec::new(),
    };
    let row_bytes = w.desc.dtype.bytes_for(k);
    // w is [N, K] (validated): row j starts j·strides[0] elements in.
    let row_stride = w.desc.strides[0];
    let row_of = |j: usize| {
        let at = w.desc.byte_at(j * row_stride);
        &w.bytes[at..at + row_bytes]
    };
    let x_tiles: Vec<&[&[f32]]> = x_rows.chunks(TILE).collect();
    // Computed transposed ([N, M]) so each task owns a contiguous block: a
    // few weight rows against every activation row.
    let mut out_t = vec![0.0f32; n * m];
    out_t
        .par_chunks_mut(ROWS_PER_TASK * m)
        .enumerate()
        .for_each_init(
            // Scratch only where rows are converted: rayon calls this once
            // per piece of work it splits off, every product.
            || match rows {
                Rows::Converted => vec![0.0f32; ROWS_PER_TASK * k],
                _ => Vec::new(),
            },
            |converted, (task, block)| {
                let j0 = task * ROWS_PER_TASK;
                let here = block.len() / m;
                if let Rows::Converted = rows {
                    for (jj, dst) in converted.chunks_exact_mut(k).take(here).enumerate() {
                        w.read_row(j0 + jj, dst);
                    }
                }
                for (t, tile) in x_tiles.iter().enumerate() {
                    let start = t * TILE;
                    for jj in 0..here {
                        let outs = &mut block[jj * m + start..jj * m + start + tile.len()];
                        match &rows {
                            Rows::Quantized(d, _) => {
                                simd::dot_rows_quantized(*d, row_of(j0 + jj), &q_tiles[t], outs)
                            }
                            Rows::Fused(d) => simd::dot_rows(*d, row_of(j0 + jj), tile, outs),
                            Rows::Converted => simd::dot_rows(
                                DType::F32,
                                f32_bytes(&converted[jj * k..(jj + 1) * k]),
                                tile,
                                outs,
                            ),
                        }
                    }
                }
            },
        );
    out_t
}

/// The bytes of an f32 slice (little-endian targets), for the byte-reading dot products.
fn f32_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: any f32 slice is a valid byte slice of 4× its length; u8 has no alignment.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

pub(super) fn batched(a: &In<'_>, b: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    let (m, k) = (a.desc.shape[1], a.desc.shape[2]);
    let n = b.desc.shape[2];
    let (av, bv) = (a.to_f32(), b.to_f32());
    let mut result = vec![0.0f32; a.desc.shape[0] * m * n];
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
