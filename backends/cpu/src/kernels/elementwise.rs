//! add and mul with the second operand broadcast where its dims are 1.

use glmhal_hal::{contiguous_strides, Result};
use rayon::prelude::*;

use super::{In, Out};

pub(super) fn broadcast(
    a: &In<'_>,
    b: &In<'_>,
    out: &mut Out<'_>,
    f: impl Fn(f32, f32) -> f32 + Sync,
) -> Result<()> {
    let shape = &a.desc.shape;
    let bshape = &b.desc.shape;
    let rank = shape.len();
    let cols = shape[rank - 1];
    let b_cols = bshape[rank - 1];
    let bstrides = contiguous_strides(bshape);
    let (av, bv) = (a.f32s(), b.f32s());
    let rows = |result: &mut [f32]| {
        result
            .par_chunks_mut(cols)
            .zip(av.par_chunks(cols))
            .enumerate()
            .for_each(|(r, (row, arow))| {
                // Offset of b's row for this row of a: dims of size 1 in b stay at 0.
                let mut rest = r;
                let mut boff = 0;
                for d in (0..rank - 1).rev() {
                    let i = rest % shape[d];
                    rest /= shape[d];
                    if bshape[d] != 1 {
                        boff += i * bstrides[d];
                    }
                }
                if b_cols == 1 {
                    let bval = bv[boff];
                    for (o, x) in row.iter_mut().zip(arow) {
                        *o = f(*x, bval);
                    }
                } else {
                    for ((o, x), y) in row.iter_mut().zip(arow).zip(&bv[boff..boff + cols]) {
                        *o = f(*x, *y);
                    }
                }
            })
    };
    out.fill_f32(av.len(), rows);
    Ok(())
}
