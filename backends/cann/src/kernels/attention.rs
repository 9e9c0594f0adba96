//! attention, composed from aclnn ops in f32 on every SoC: Q scaled first
//! (aclnnMuls: GLM-4's scores overflow f16 otherwise), scores for all heads
//! in one aclnnMatmul with each KV head broadcast over its query group, the
//! causal mask (aclnnInplaceMaskedFillScalar with -inf), aclnnSoftmax, and
//! one aclnnMatmul with V into the output's own strides. Where the cube has
//! no f32 path the two products run in f16 (declared in `support.rs`).

use std::ffi::c_void;

use glmhal_hal::{DType, Result};

use super::convert::cast;
use super::elementwise::{mask_fill, scale as muls};
use super::reduce::softmax;
use super::{Handle, Launch, Operand};

fn matmul(l: &Launch<'_>, a: &Handle<'_>, b: &Handle<'_>, out: &Handle<'_>) -> Result<()> {
    let (mut size, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
    // SAFETY: every descriptor is live; outputs are valid for writes.
    let status = unsafe {
        (l.acl.matmul_ws)(
            a.ptr(),
            b.ptr(),
            out.ptr(),
            l.family.cube_math_type(a.dtype()),
            &mut size,
            &mut exec,
        )
    };
    l.run("Matmul", status, size, exec, l.acl.matmul)
}

/// `out = softmax(q·scale·kᵀ (masked)) · v` with `q [T, Hq, D]`,
/// `k`, `v [S, Hkv, D]`, query head `h` reading KV head `h / (Hq / Hkv)`.
pub(crate) fn attention(
    l: &Launch<'_>,
    [q, k, v]: [&Operand; 3],
    factor: f64,
    causal: bool,
    out: &Operand,
) -> Result<()> {
    let acl = l.acl;
    let (t, hq, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2]);
    let (s, hkv) = (k.desc.shape[0], k.desc.shape[1]);
    let g = hq / hkv.max(1);
    let scores_shape = [hkv, g, t, s];
    let temps = l.temps(&[
        (DType::F32, &[t, hq, d]),
        (DType::F32, &[t, hq, d]),
        (DType::F32, &[s, hkv, d]),
        (DType::F32, &[s, hkv, d]),
        (DType::F32, &scores_shape),
        (DType::F32, &scores_shape),
        (DType::F32, &[t, hq, d]),
    ])?;
    let [q32, q_scaled, k32, v32, scores, probs, out32] = &temps[..] else {
        unreachable!("seven temporaries were asked for")
    };
    let q_in = l.as_f32(q, q32)?;
    muls(l, &q_in.handle(acl)?, factor, &q_scaled.handle(acl)?)?;
    let (k_in, v_in) = (l.as_f32(k, k32)?, l.as_f32(v, v32)?);

    // [Hkv, g, T, D] over Q's [T, Hq, D]; Kᵀ as [Hkv, 1, D, S]; V as [Hkv, 1, S, D].
    let group_view = |x: &Operand| {
        let [s0, s1, s2] = x.strides3();
        x.view(acl, &[hkv, g, t, d], &[g * s1, s1, s0, s2], 0)
    };
    let [ks0, ks1, ks2] = k_in.strides3();
    let k_t = k_in.view(acl, &[hkv, 1, d, s], &[ks1, ks1, ks2, ks0], 0)?;
    let [vs0, vs1, vs2] = v_in.strides3();
    let v_4 = v_in.view(acl, &[hkv, 1, s, d], &[vs1, vs1, vs0, vs2], 0)?;

    let scores_h = scores.handle(acl)?;
    matmul(l, &group_view(q_scaled)?, &k_t, &scores_h)?;
    if causal && t > 1 {
        mask_fill(l, &scores_h, &l.causal_mask(t, s)?, f32::NEG_INFINITY)?;
    }
    let probs_h = probs.handle(acl)?;
    softmax(l, &scores_h, &probs_h)?;
    if out.desc.dtype == DType::F32 {
        matmul(l, &probs_h, &v_4, &group_view(out)?)
    } else {
        matmul(l, &probs_h, &v_4, &group_view(out32)?)?;
        cast(l, &out32.handle(acl)?, out.desc.dtype, &out.handle(acl)?)
    }
}
