//! mat_mul (weights in any dtype, dequantized a row at a time) and batched_mat_mul.

use glmhal_hal::Result;
use rayon::prelude::*;

use super::{dot, In, Out};

/// Weight rows handled by one task: enough work to amortize scheduling.
const ROWS_PER_TASK: usize = 8;

pub(super) fn matmul(
    x: &In<'_>,
    w: &In<'_>,
    bias: Option<&In<'_>>,
    out: &mut Out<'_>,
) -> Result<()> {
    let (m, k) = (x.desc.shape[0], x.desc.shape[1]);
    let n = w.desc.shape[0];
    let xs = x.to_f32();
    let bias = bias.map(|b| b.to_f32());
    // Computed transposed ([N, M]) so each task owns a contiguous block and
    // each weight row is converted once for all M activations.
    let mut out_t = vec![0.0f32; n * m];
    out_t
        .par_chunks_mut(ROWS_PER_TASK * m)
        .enumerate()
        .for_each_init(
            || vec![0.0f32; k],
            |wrow, (task, block)| {
                for (jj, col) in block.chunks_exact_mut(m).enumerate() {
                    let j = task * ROWS_PER_TASK + jj;
                    w.read_row(j, wrow);
                    let b = bias.as_ref().map_or(0.0, |b| b[j]);
                    for (i, o) in col.iter_mut().enumerate() {
                        *o = dot(&xs[i * k..(i + 1) * k], wrow) + b;
                    }
                }
            },
        );
    let mut result = vec![0.0f32; m * n];
    result.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for (j, o) in row.iter_mut().enumerate() {
            *o = out_t[j * m + i];
        }
    });
    out.store(&result);
    Ok(())
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
