//! cast (including dequantization) and quantize.

use glmhal_hal::{quant, Result};

use super::{In, Out};

pub(super) fn cast(x: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    out.store(&x.to_f32());
    Ok(())
}

pub(super) fn quantize(x: &In<'_>, out: &mut Out<'_>) -> Result<()> {
    let cols = x.desc.last_dim();
    let dtype = out.desc.dtype;
    for (r, row) in x.to_f32().chunks_exact(cols).enumerate() {
        quant::quantize(dtype, row, out.row_bytes_mut(r));
    }
    Ok(())
}
