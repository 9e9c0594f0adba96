//! The pieces of rotary embedding: `aclnnCos`, `aclnnSin`,
//! `aclnnRotaryPositionEmbedding` and `aclnnInplaceCopy` (which also carries
//! the dims a partial rotary embedding passes through).

use std::ffi::c_void;

use crate::ops::{broadcast, hand_out, tensors, unary, Work};
use crate::state::{code, lock};

/// ACL's `aclnnCosGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnCosGetWorkspaceSize(
    x: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        unary(
            "aclnnCosGetWorkspaceSize",
            x,
            out,
            |v, _| v.cos(),
            0.0,
            "Cos",
            ws,
            exec,
        )
    }
}
second_phase!(aclnnCos, "Cos");

/// ACL's `aclnnSinGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnSinGetWorkspaceSize(
    x: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        unary(
            "aclnnSinGetWorkspaceSize",
            x,
            out,
            |v, _| v.sin(),
            0.0,
            "Sin",
            ws,
            exec,
        )
    }
}
second_phase!(aclnnSin, "Sin");

/// ACL's `aclnnRotaryPositionEmbeddingGetWorkspaceSize`: `x` is 4-D with the
/// rotated dims last, `cos`/`sin` 4-D broadcasting to it with the same last
/// dim; mode 0 rotates halves (NeoX), mode 1 interleaved pairs.
#[no_mangle]
pub unsafe extern "C" fn aclnnRotaryPositionEmbeddingGetWorkspaceSize(
    x: *const c_void,
    cos: *const c_void,
    sin: *const c_void,
    mode: i64,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnRotaryPositionEmbeddingGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [x, c, sn, o] = match tensors(
        s,
        call,
        [("x", x), ("cos", cos), ("sin", sin), ("out", out)],
    ) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if let Err(e) = crate::soc::require(
        s,
        call,
        "RotaryPositionEmbedding",
        crate::soc::Soc::has_rotary_position_embedding,
    ) {
        return e;
    }
    let d = x.dims.last().copied().unwrap_or(0);
    let ok = x.dims.len() == 4
        && o.dims == x.dims
        && c.dims == sn.dims
        && c.dims.len() == 4
        && c.dims.last() == Some(&d)
        && broadcast(&c.dims, &x.dims).as_deref() == Some(&x.dims[..])
        && d % 2 == 0
        && d < 896
        && (mode == 0 || mode == 1)
        && [&c, &sn, &o].iter().all(|t| t.dtype == x.dtype)
        && x.dtype.is_float();
    if !ok {
        return s.violation(
            call,
            format!(
                "x {:?} {}, cos {:?} {}, sin {:?} {}, mode {mode}, out {:?} {} (4-D, cos/sin broadcast to x with its last dim, an even last dim below 896, one float dtype, mode 0 or 1)",
                x.dims, x.dtype, c.dims, c.dtype, sn.dims, sn.dtype, o.dims, o.dtype
            ),
            code::INVALID_PARAM,
        );
    }
    let work = Work::Compute(Box::new(move || {
        let shape = x.dims.clone();
        let half = d / 2;
        for row in 0..x.numel() / d.max(1) {
            let at = |i: usize| row * d + i;
            let values: Vec<f64> = (0..d)
                .map(|i| {
                    let (partner, sign) = match (mode, i) {
                        (1, i) if i % 2 == 0 => (i + 1, -1.0),
                        (1, i) => (i - 1, 1.0),
                        (_, i) if i < half => (i + half, -1.0),
                        (_, i) => (i - half, 1.0),
                    };
                    let xi = x.read(x.element(at(i), &shape));
                    let xp = x.read(x.element(at(partner), &shape));
                    xi * c.read(c.element(at(i), &shape))
                        + sign * xp * sn.read(sn.element(at(i), &shape))
                })
                .collect();
            for (i, v) in values.into_iter().enumerate() {
                o.write(o.element(at(i), &shape), v);
            }
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "RotaryPositionEmbedding", ws, exec) }
}
second_phase!(aclnnRotaryPositionEmbedding, "RotaryPositionEmbedding");

/// ACL's `aclnnInplaceCopyGetWorkspaceSize`: `selfRef = src`, `src`
/// broadcast to `selfRef`'s shape and converted to its dtype.
#[no_mangle]
pub unsafe extern "C" fn aclnnInplaceCopyGetWorkspaceSize(
    target: *const c_void,
    src: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnInplaceCopyGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [t, x] = match tensors(s, call, [("selfRef", target), ("src", src)]) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if broadcast(&x.dims, &t.dims).as_deref() != Some(&t.dims[..]) {
        return s.violation(
            call,
            format!(
                "src {:?} does not broadcast to selfRef {:?}",
                x.dims, t.dims
            ),
            code::INVALID_PARAM,
        );
    }
    let work = Work::Compute(Box::new(move || {
        for i in 0..t.numel() {
            t.write(t.element(i, &t.dims), x.read(x.element(i, &t.dims)));
        }
        Ok(())
    }));
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "InplaceCopy", ws, exec) }
}
second_phase!(aclnnInplaceCopy, "InplaceCopy");
