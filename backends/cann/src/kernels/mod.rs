//! One function per aclnn op, in the two-phase convention: describe the
//! tensors (element strides and offsets, row-major dims, 1-D storage covering
//! the buffer), ask for the workspace and executor, run on the stream, and
//! destroy the descriptors.

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod convert;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod kv_cache;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod quant;
pub(crate) mod quantize;
pub(crate) mod reduce;
pub(crate) mod rope;

use std::ffi::c_void;

use glmhal_hal::{DType, HalError, Result, TensorDesc};

use crate::loader::{Acl, RunFn, ACL_BOOL, FORMAT_ND};

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
    /// The aclDataType it was created with.
    dtype: i32,
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

    /// The aclDataType it was created with.
    pub(crate) fn dtype(&self) -> i32 {
        self.dtype
    }
}

/// An aclTensor for `desc` inside the buffer at `base` of `buffer_len` bytes.
pub(crate) fn tensor<'a>(
    acl: &'a Acl,
    desc: &TensorDesc,
    base: usize,
    buffer_len: usize,
) -> Result<Handle<'a>> {
    let elem = desc.dtype.block_bytes();
    raw_tensor(
        acl,
        Layout {
            dims: &desc.shape,
            strides: &desc.strides,
            offset: desc.offset / elem,
            dtype: acl_dtype(desc.dtype)?,
            elem_bytes: elem,
        },
        base,
        buffer_len,
    )
}

/// A view in an aclDataType glmhal has no `DType` for (int64, bool) or any other.
pub(crate) struct Layout<'s> {
    /// Row-major dims.
    pub dims: &'s [usize],
    /// Element strides.
    pub strides: &'s [usize],
    /// Element offset.
    pub offset: usize,
    /// aclDataType.
    pub dtype: i32,
    /// Bytes per element.
    pub elem_bytes: usize,
}

/// An aclTensor for `layout` inside the buffer at `base` of `buffer_len` bytes.
pub(crate) fn raw_tensor<'a>(
    acl: &'a Acl,
    layout: Layout<'_>,
    base: usize,
    buffer_len: usize,
) -> Result<Handle<'a>> {
    let dims: Vec<i64> = layout.dims.iter().map(|d| *d as i64).collect();
    let strides: Vec<i64> = layout.strides.iter().map(|s| *s as i64).collect();
    let storage = [(buffer_len / layout.elem_bytes) as i64];
    // SAFETY: the arrays live through the call; `base` is a device allocation of `buffer_len` bytes.
    let ptr = unsafe {
        (acl.create_tensor)(
            dims.as_ptr(),
            dims.len() as u64,
            layout.dtype,
            strides.as_ptr(),
            layout.offset as i64,
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
        dtype: layout.dtype,
    })
}

/// A tensor an op was given or made: its view and the device buffer it lives in.
#[derive(Clone, Debug)]
pub(crate) struct Operand {
    /// The view.
    pub desc: TensorDesc,
    /// Device address of the buffer.
    pub base: usize,
    /// Bytes of the buffer.
    pub len: usize,
    /// `[N, K]` of a weight the buffer holds in the split layout.
    pub prepared: Option<[usize; 2]>,
}

impl Operand {
    /// Its aclTensor.
    pub(crate) fn handle<'a>(&self, acl: &'a Acl) -> Result<Handle<'a>> {
        tensor(acl, &self.desc, self.base, self.len)
    }

    /// The same memory seen with other dims and element strides, starting
    /// `skip` elements after the view's first element.
    pub(crate) fn view<'a>(
        &self,
        acl: &'a Acl,
        dims: &[usize],
        strides: &[usize],
        skip: usize,
    ) -> Result<Handle<'a>> {
        self.reshaped(dims, strides, skip).handle(acl)
    }

    /// [`Operand::view`] as an operand, for views of views.
    pub(crate) fn reshaped(&self, dims: &[usize], strides: &[usize], skip: usize) -> Operand {
        let elem = self.desc.dtype.block_bytes();
        Operand {
            desc: TensorDesc::strided(
                self.desc.dtype,
                dims,
                strides,
                self.desc.offset + skip * elem,
            ),
            base: self.base,
            len: self.len,
            prepared: None,
        }
    }

    /// Element strides of a rank-3 view, for building 4-D views of it.
    pub(crate) fn strides3(&self) -> [usize; 3] {
        let s = &self.desc.strides;
        [s[0], s[1], s[2]]
    }
}

/// A causal mask `[rows, cols]` as aclnn bool bytes: true (masked) where
/// column `j` lies after row `i`'s position `i + cols - rows`.
pub(crate) fn causal_mask(rows: usize, cols: usize) -> Vec<u8> {
    (0..rows)
        .flat_map(|i| (0..cols).map(move |j| u8::from(j + rows > i + cols)))
        .collect()
}

/// A device copy of constant data (frequency tables, masks) and its length.
pub(crate) type ConstantFn<'a> = dyn Fn(&str, &dyn Fn() -> Vec<u8>) -> Result<usize> + 'a;

/// An aclIntArray, destroyed on drop.
pub(crate) struct IntArray<'a> {
    acl: &'a Acl,
    ptr: *mut c_void,
}

impl<'a> IntArray<'a> {
    pub(crate) fn new(acl: &'a Acl, values: &[i64]) -> Result<Self> {
        // SAFETY: `values` lives through the call; ACL copies it.
        let ptr = unsafe { (acl.create_int_array)(values.as_ptr(), values.len() as u64) };
        if ptr.is_null() {
            acl.check("aclCreateIntArray", -1)?;
        }
        Ok(IntArray { acl, ptr })
    }

    pub(crate) fn ptr(&self) -> *const c_void {
        self.ptr
    }
}

impl Drop for IntArray<'_> {
    fn drop(&mut self) {
        // SAFETY: created by aclCreateIntArray, destroyed once.
        unsafe { (self.acl.destroy_int_array)(self.ptr) };
    }
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
        dtype: crate::loader::ACL_FLOAT,
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
    /// The device address of the constant named by the key, uploaded from
    /// the bytes the closure makes the first time the key is seen.
    pub constant: &'a ConstantFn<'a>,
    /// The SoC family, for what its aclnn library accepts.
    pub family: crate::device::Family,
}

/// Temporaries start on 512-byte boundaries (ACL's alignment).
const SCRATCH_ALIGN: usize = 512;

impl<'a> Launch<'a> {
    /// Places contiguous temporaries of these dtypes and shapes side by
    /// side in the scratch buffer (one request, so no temporary of an op
    /// moves another).
    pub(crate) fn temps(&self, specs: &[(DType, &[usize])]) -> Result<Vec<Operand>> {
        let sizes: Vec<usize> = specs
            .iter()
            .map(|(d, shape)| d.bytes_for(shape.iter().product::<usize>().max(1)))
            .collect();
        let mut offsets = Vec::with_capacity(sizes.len());
        let mut total = 0usize;
        for size in &sizes {
            offsets.push(total);
            total += size.div_ceil(SCRATCH_ALIGN) * SCRATCH_ALIGN;
        }
        let base = (self.scratch)(total as u64)?;
        Ok(specs
            .iter()
            .zip(offsets.iter().zip(&sizes))
            .map(|((d, shape), (at, len))| Operand {
                desc: TensorDesc::contiguous(*d, shape),
                base: base + at,
                len: *len,
                prepared: None,
            })
            .collect())
    }

    /// A bool aclTensor `[rows, cols]` holding [`causal_mask`], uploaded once per shape.
    pub(crate) fn causal_mask(&self, rows: usize, cols: usize) -> Result<Handle<'a>> {
        let key = format!("causal-mask:{rows}:{cols}");
        let base = (self.constant)(&key, &|| causal_mask(rows, cols))?;
        raw_tensor(
            self.acl,
            Layout {
                dims: &[rows, cols],
                strides: &[cols, 1],
                offset: 0,
                dtype: ACL_BOOL,
                elem_bytes: 1,
            },
            base,
            rows * cols,
        )
    }

    /// `x` itself when it is f32, otherwise `x` cast into `temp` (same shape).
    pub(crate) fn as_f32(&self, x: &Operand, temp: &Operand) -> Result<Operand> {
        if x.desc.dtype == DType::F32 {
            return Ok(x.clone());
        }
        convert::cast(
            self,
            &x.handle(self.acl)?,
            DType::F32,
            &temp.handle(self.acl)?,
        )?;
        Ok(temp.clone())
    }

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
