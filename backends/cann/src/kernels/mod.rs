//! One function per aclnn op, in the two-phase convention: describe the
//! tensors (element strides and offsets, row-major dims, 1-D storage covering
//! the buffer), ask for the workspace and executor, run on the stream, and
//! destroy the descriptors.

pub(crate) mod activation;
pub(crate) mod convert;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod kv_cache;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod reduce;

use std::ffi::c_void;

use glmhal_hal::{DType, HalError, Op, Result, TensorDesc};

use crate::loader::{Acl, RunFn, FORMAT_ND};

/// Why an op with these tensors has no aclnn mapping in this build, if it has none.
pub(crate) fn unmapped(op: &Op, ins: &[TensorDesc], outs: &[TensorDesc]) -> Option<String> {
    let same = |ts: &[&TensorDesc]| ts.windows(2).all(|w| w[0].dtype == w[1].dtype);
    match op {
        Op::Add
        | Op::Mul
        | Op::Scale { .. }
        | Op::Silu
        | Op::Gelu
        | Op::SwiGlu
        | Op::Cast
        | Op::RmsNorm { .. } => None,
        Op::BatchedMatMul => (!same(&[&ins[0], &ins[1], &outs[0]])).then(|| {
            "aclnnBatchMatMul takes a, b and out in one dtype; mixed dtypes are not mapped yet".into()
        }),
        Op::Softmax { scale, causal } => (*scale != 1.0 || *causal)
            .then(|| "scaled or causal softmax is not mapped to aclnn yet (aclnnSoftmax has neither)".into()),
        Op::MatMul { .. } => (!same(&[&ins[0], &ins[1], &outs[0]])).then(|| {
            "aclnnMm takes x, w and y in one dtype; mixed dtypes (a cast first) are not mapped yet".into()
        }),
        Op::KvWrite => (ins[0].dtype != outs[0].dtype).then(|| {
            "aclnnInplaceIndexCopy copies rows; rows and a cache of different dtypes are not mapped yet".into()
        }),
        Op::GetRows => (ins[0].dtype != outs[0].dtype).then(|| {
            "aclnnIndexSelect copies rows; a table and output of different dtypes are not mapped yet".into()
        }),
        other => Some(format!("{} is not mapped to an aclnn op in this build yet", other.name())),
    }
}

/// aclDataType of a dtype.
pub(crate) fn acl_dtype(d: DType) -> Result<i32> {
    match d {
        DType::F32 => Ok(0),
        DType::F16 => Ok(1),
        DType::I32 => Ok(3),
        DType::Bf16 => Ok(27),
        other => Err(HalError::dtype(
            "cann",
            format!("{other} has no aclDataType mapping"),
        )),
    }
}

/// A tensor or scalar descriptor, destroyed on drop.
pub(crate) struct Handle<'a> {
    acl: &'a Acl,
    ptr: *mut c_void,
    scalar: bool,
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        // SAFETY: created by aclCreateTensor/aclCreateScalar, destroyed once.
        unsafe {
            if self.scalar {
                (self.acl.destroy_scalar)(self.ptr);
            } else {
                (self.acl.destroy_tensor)(self.ptr);
            }
        }
    }
}

impl Handle<'_> {
    pub(crate) fn ptr(&self) -> *const c_void {
        self.ptr
    }
}

/// An aclTensor for `desc` inside the buffer at `base` of `buffer_len` bytes.
pub(crate) fn tensor<'a>(
    acl: &'a Acl,
    desc: &TensorDesc,
    base: usize,
    buffer_len: usize,
) -> Result<Handle<'a>> {
    let dtype = acl_dtype(desc.dtype)?;
    let elem = desc.dtype.block_bytes();
    let dims: Vec<i64> = desc.shape.iter().map(|d| *d as i64).collect();
    let strides: Vec<i64> = desc.strides.iter().map(|s| *s as i64).collect();
    let storage = [(buffer_len / elem) as i64];
    // SAFETY: the arrays live through the call; `base` is a device allocation of `buffer_len` bytes.
    let ptr = unsafe {
        (acl.create_tensor)(
            dims.as_ptr(),
            dims.len() as u64,
            dtype,
            strides.as_ptr(),
            (desc.offset / elem) as i64,
            FORMAT_ND,
            storage.as_ptr(),
            1,
            base as *mut c_void,
        )
    };
    if ptr.is_null() {
        acl.check("aclCreateTensor", -1)?;
    }
    Ok(Handle {
        acl,
        ptr,
        scalar: false,
    })
}

/// An f32 aclScalar.
pub(crate) fn scalar(acl: &Acl, value: f32) -> Result<Handle<'_>> {
    let mut v = value;
    // SAFETY: `v` lives through the call; ACL copies the value.
    let ptr = unsafe { (acl.create_scalar)((&mut v as *mut f32).cast(), crate::loader::ACL_FLOAT) };
    if ptr.is_null() {
        acl.check("aclCreateScalar", -1)?;
    }
    Ok(Handle {
        acl,
        ptr,
        scalar: true,
    })
}

/// What every op needs to run: the runtime, the stream and a workspace.
pub(crate) struct Launch<'a> {
    pub acl: &'a Acl,
    pub stream: *mut c_void,
    /// Returns a device buffer of at least the size asked for.
    pub workspace: &'a dyn Fn(u64) -> Result<usize>,
    /// Returns a scratch device buffer (separate from the workspace) of at least the size asked for.
    pub scratch: &'a dyn Fn(u64) -> Result<usize>,
}

impl Launch<'_> {
    /// The second phase: workspace, then `aclnnXxx` on the stream.
    pub(crate) fn run(
        &self,
        name: &str,
        status: i32,
        size: u64,
        executor: *mut c_void,
        run: RunFn,
    ) -> Result<()> {
        self.acl
            .check(&format!("aclnn{name}GetWorkspaceSize"), status)?;
        let ws = if size > 0 { (self.workspace)(size)? } else { 0 };
        // SAFETY: the executor came from the first phase; the workspace holds `size` bytes.
        self.acl.check(&format!("aclnn{name}"), unsafe {
            run(ws as *mut c_void, size, executor, self.stream)
        })
    }
}
