//! rope on a 4-D view of the first `rot` dims of each head, in f32: on
//! Atlas A2 one aclnnRotaryPositionEmbedding (mode 1 interleaved pairs,
//! mode 0 halves; rotated dims below 896); elsewhere, composed from
//! aclnnMul and aclnnAdd on views of the pairs. cos and sin are made on the
//! device from the positions (aclnnCast, aclnnMul by a frequency table
//! uploaded once, aclnnCos, aclnnSin); the dims past `rot` are copied
//! through with aclnnInplaceCopy.

use std::ffi::c_void;

use glmhal_hal::{DType, Result, RopeMode};

use super::convert::{cast, copy};
use super::elementwise::{binary, scale, unary};
use super::{raw_tensor, Launch, Layout, Operand};
use crate::loader::ACL_FLOAT;

/// aclnnRotaryPositionEmbedding takes a rotated dim below this (Atlas A2).
const ROTARY_MAX_DIM: usize = 896;

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
    let rows = [1, t, 1, rot];
    let rotated = [1, t, heads, rot];
    let pairs = [1, t, heads, rot / 2];
    let fused = l.family.has_rotary_position_embedding() && rot < ROTARY_MAX_DIM;
    let position = [1, t, 1, 1];
    let mut specs: Vec<(DType, &[usize])> = vec![
        (DType::F32, &position),
        (DType::F32, &rows),
        (DType::F32, &rows),
        (DType::F32, &rows),
        (DType::F32, &rotated),
        (DType::F32, &rotated),
    ];
    if !fused {
        specs.extend([(DType::F32, &rows[..]), (DType::F32, &pairs[..])]);
        specs.extend([(DType::F32, &pairs[..]); 3]);
    }
    let temps = l.temps(&specs)?;
    let [pos, angle, cos, sin, x32, y32, rest @ ..] = &temps[..] else {
        unreachable!("six temporaries or more were asked for")
    };
    tables(l, positions, (rot, theta, mode), [pos, angle, cos, sin])?;

    let [xs0, xs1, xs2] = x.strides3();
    let [os0, os1, os2] = out.strides3();
    let x_rot = x.reshaped(&rotated, &[t * xs0, xs0, xs1, xs2], 0);
    let out_rot = out.reshaped(&rotated, &[t * os0, os0, os1, os2], 0);
    let input = if x.desc.dtype == DType::F32 {
        x_rot
    } else {
        cast(l, &x_rot.handle(acl)?, DType::F32, &x32.handle(acl)?)?;
        x32.clone()
    };
    let result = if out.desc.dtype == DType::F32 {
        out_rot.clone()
    } else {
        y32.clone()
    };
    if fused {
        rotary_position_embedding(l, &input, [cos, sin], mode, &result)?;
    } else {
        rotate_composed(l, &input, [cos, sin], mode, &result, rest)?;
    }
    if out.desc.dtype != DType::F32 {
        cast(l, &y32.handle(acl)?, out.desc.dtype, &out_rot.handle(acl)?)?;
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

/// cos and sin `[1, T, 1, rot]` of each position's angles, through `pos`
/// and `angle`.
fn tables(
    l: &Launch<'_>,
    positions: &Operand,
    (rot, theta, mode): (usize, f64, RopeMode),
    [pos, angle, cos, sin]: [&Operand; 4],
) -> Result<()> {
    let acl = l.acl;
    let t = positions.desc.shape[0];
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
    let ps = positions.desc.strides[0];
    cast(
        l,
        &positions.view(acl, &[1, t, 1, 1], &[t * ps, ps, 1, 1], 0)?,
        DType::F32,
        &pos.handle(acl)?,
    )?;
    let angle_h = angle.handle(acl)?;
    binary(l, false, &pos.handle(acl)?, &freq, &angle_h)?;
    unary(l, ("Cos", acl.cos_ws, acl.cos), &angle_h, &cos.handle(acl)?)?;
    unary(l, ("Sin", acl.sin_ws, acl.sin), &angle_h, &sin.handle(acl)?)
}

/// One aclnnRotaryPositionEmbedding of the f32 view `input` into `result`.
fn rotary_position_embedding(
    l: &Launch<'_>,
    input: &Operand,
    [cos, sin]: [&Operand; 2],
    mode: RopeMode,
    result: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (input, cos, sin, result) = (
        input.handle(acl)?,
        cos.handle(acl)?,
        sin.handle(acl)?,
        result.handle(acl)?,
    );
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (acl.rope_ws)(
            input.ptr(),
            cos.ptr(),
            sin.ptr(),
            mode_code(mode),
            result.ptr(),
            &mut size,
            &mut exec,
        )
    };
    l.run("RotaryPositionEmbedding", status, size, exec, acl.rope)
}

/// The two members of every rotated pair of a `[1, T, H, rot]` view: even
/// and odd dims (interleaved) or the first and second half (NeoX).
fn members(x: &Operand, mode: RopeMode) -> [Operand; 2] {
    let (d, s) = (&x.desc.shape, &x.desc.strides);
    let half = d[3] / 2;
    let dims = [d[0], d[1], d[2], half];
    let (step, second) = match mode {
        RopeMode::Interleaved => (2 * s[3], s[3]),
        RopeMode::Neox => (s[3], half * s[3]),
    };
    let strides = [s[0], s[1], s[2], step];
    [
        x.reshaped(&dims, &strides, 0),
        x.reshaped(&dims, &strides, second),
    ]
}

/// `(a, b) -> (a·cos − b·sin, b·cos + a·sin)` for every pair, from aclnnMul,
/// aclnnMuls and aclnnAdd; every product is taken before `result` is
/// written, so `result` may be `input`.
fn rotate_composed(
    l: &Launch<'_>,
    input: &Operand,
    [cos, sin]: [&Operand; 2],
    mode: RopeMode,
    result: &Operand,
    temps: &[Operand],
) -> Result<()> {
    let acl = l.acl;
    let [neg_sin, ac, bs, bc, as_] = temps else {
        unreachable!("five temporaries were asked for")
    };
    scale(l, &sin.handle(acl)?, -1.0, &neg_sin.handle(acl)?)?;
    let [a, b] = members(input, mode);
    let [c, _] = members(cos, mode);
    let [s, _] = members(sin, mode);
    let [ns, _] = members(neg_sin, mode);
    let mul = |x: &Operand, y: &Operand, into: &Operand| {
        binary(
            l,
            false,
            &x.handle(acl)?,
            &y.handle(acl)?,
            &into.handle(acl)?,
        )
    };
    mul(&a, &c, ac)?;
    mul(&b, &ns, bs)?;
    mul(&b, &c, bc)?;
    mul(&a, &s, as_)?;
    let [first, second] = members(result, mode);
    binary(
        l,
        true,
        &ac.handle(acl)?,
        &bs.handle(acl)?,
        &first.handle(acl)?,
    )?;
    binary(
        l,
        true,
        &bc.handle(acl)?,
        &as_.handle(acl)?,
        &second.handle(acl)?,
    )
}
