//! rope: aclnnRotaryPositionEmbedding (mode 1 interleaved pairs, mode 0
//! halves) on a 4-D view of the first `rot` dims of each head, in f32. cos
//! and sin are made on the device from the positions (aclnnCast, aclnnMul by
//! a frequency table uploaded once, aclnnCos, aclnnSin); the dims past `rot`
//! are copied through with aclnnInplaceCopy.

use std::ffi::c_void;

use glmhal_hal::{DType, Result, RopeMode};

use super::convert::{cast, copy};
use super::elementwise::binary;
use super::{raw_tensor, Handle, Launch, Layout, Operand};
use crate::loader::{UnaryWsFn, ACL_FLOAT};

/// aclnnRotaryPositionEmbedding's mode for a pairing.
fn mode_code(mode: RopeMode) -> i64 {
    match mode {
        RopeMode::Neox => 0,
        RopeMode::Interleaved => 1,
    }
}

/// `theta^(-2i/rot)` laid out the way the mode pairs dims: each frequency
/// twice in a row (interleaved) or the half repeated (NeoX).
fn frequencies(rot: usize, theta: f64, mode: RopeMode) -> Vec<u8> {
    let half = (rot / 2).max(1);
    (0..rot)
        .map(|j| {
            let i = match mode {
                RopeMode::Interleaved => j / 2,
                RopeMode::Neox => j % half,
            };
            theta.powf(-2.0 * i as f64 / rot as f64) as f32
        })
        .flat_map(f32::to_le_bytes)
        .collect()
}

fn unary(
    l: &Launch<'_>,
    name: &str,
    ws: UnaryWsFn,
    run: crate::loader::RunFn,
    x: &Handle<'_>,
    out: &Handle<'_>,
) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe { ws(x.ptr(), out.ptr(), &mut size, &mut exec) };
    l.run(name, status, size, exec, run)
}

/// Rotates the first `rot` dims of each head of `x [T, heads, D]` by
/// `positions [T]`, writing `out`.
pub(crate) fn rope(
    l: &Launch<'_>,
    x: &Operand,
    positions: &Operand,
    (rot, theta, mode): (usize, f64, RopeMode),
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (t, heads, d) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2]);
    let key = format!("rope-frequencies:{rot}:{theta}:{mode:?}");
    let table = (l.constant)(&key, &|| frequencies(rot, theta, mode))?;
    let freq = raw_tensor(
        acl,
        Layout {
            dims: &[1, 1, 1, rot],
            strides: &[rot, rot, rot, 1],
            offset: 0,
            dtype: ACL_FLOAT,
            elem_bytes: 4,
        },
        table,
        rot * 4,
    )?;
    let rows = [1, t, 1, rot];
    let rotated = [1, t, heads, rot];
    let temps = l.temps(&[
        (DType::F32, &[1, t, 1, 1]),
        (DType::F32, &rows),
        (DType::F32, &rows),
        (DType::F32, &rows),
        (DType::F32, &rotated),
        (DType::F32, &rotated),
    ])?;
    let [pos, angle, cos, sin, x32, y32] = &temps[..] else {
        unreachable!("six temporaries were asked for")
    };
    let ps = positions.desc.strides[0];
    cast(
        l,
        &positions.view(acl, &[1, t, 1, 1], &[t * ps, ps, 1, 1], 0)?,
        DType::F32,
        &pos.handle(acl)?,
    )?;
    let angle_h = angle.handle(acl)?;
    binary(l, false, &pos.handle(acl)?, &freq, &angle_h)?;
    let (cos_h, sin_h) = (cos.handle(acl)?, sin.handle(acl)?);
    unary(l, "Cos", acl.cos_ws, acl.cos, &angle_h, &cos_h)?;
    unary(l, "Sin", acl.sin_ws, acl.sin, &angle_h, &sin_h)?;

    let [xs0, xs1, xs2] = x.strides3();
    let [os0, os1, os2] = out.strides3();
    let x_rot = x.view(acl, &rotated, &[t * xs0, xs0, xs1, xs2], 0)?;
    let out_rot = out.view(acl, &rotated, &[t * os0, os0, os1, os2], 0)?;
    let x32_h = x32.handle(acl)?;
    let input = if x.desc.dtype == DType::F32 {
        &x_rot
    } else {
        cast(l, &x_rot, DType::F32, &x32_h)?;
        &x32_h
    };
    let y32_h = y32.handle(acl)?;
    let result = if out.desc.dtype == DType::F32 {
        &out_rot
    } else {
        &y32_h
    };
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (acl.rope_ws)(
            input.ptr(),
            cos_h.ptr(),
            sin_h.ptr(),
            mode_code(mode),
            result.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("RotaryPositionEmbedding", status, size, exec, acl.rope)?;
    if out.desc.dtype != DType::F32 {
        cast(l, &y32_h, out.desc.dtype, &out_rot)?;
    }
    if rot < d {
        let pass = [t, heads, d - rot];
        copy(
            l,
            &out.view(acl, &pass, &[os0, os1, os2], rot * os2)?,
            &x.view(acl, &pass, &[xs0, xs1, xs2], rot * xs2)?,
        )?;
    }
    Ok(())
}
