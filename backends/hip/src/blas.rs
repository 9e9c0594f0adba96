//! rocBLAS (ROCm, and Hygon DTK's build of it), loaded at run time, for
//! f32/f16/bf16 products with f32 compute (`rocblas_gemm_strided_batched_ex`,
//! result written in place of C). The handle uses the null stream, the one
//! every kernel launch uses. Without the library the tree's own kernels run
//! the products, and `glmhal devices` says so.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Mutex;

use glmhal_gpu_kernels::blas::{check_status, open_library, Gemm, StatusStringFn, VendorBlas};
use glmhal_gpu_kernels::runtime::DevicePtr;
use glmhal_hal::{DType, HalError, Result};
use libloading::Library;

use crate::loader::{rocm_dirs, SetDeviceFn};

/// rocblas_status_success.
const SUCCESS: c_int = 0;
/// rocblas_operation_none / rocblas_operation_transpose.
const OP_N: c_int = 111;
const OP_T: c_int = 112;
/// rocblas_datatype: f16_r, f32_r, bf16_r.
const F16: c_int = 150;
const F32: c_int = 151;
const BF16: c_int = 168;
/// rocblas_gemm_algo_standard.
const ALGO_STANDARD: c_int = 0;

type Handle = *mut c_void;
type CreateFn = unsafe extern "C" fn(*mut Handle) -> c_int;
type DestroyFn = unsafe extern "C" fn(Handle) -> c_int;
type VersionStringFn = unsafe extern "C" fn(*mut c_char, usize) -> c_int;
type GemmFn = unsafe extern "C" fn(
    Handle,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    c_int,
    c_int,
    i64,
    *const c_void,
    c_int,
    c_int,
    i64,
    *const c_void,
    *const c_void,
    c_int,
    c_int,
    i64,
    *mut c_void,
    c_int,
    c_int,
    i64,
    c_int,
    c_int,
    c_int,
    i32,
    u32,
) -> c_int;

const NAMES: [&str; 4] = [
    "librocblas.so",
    "librocblas.so.4",
    "librocblas.so.3",
    "librocblas.so.0",
];

/// Opens the library only, for device listings: its path, or why not.
pub fn locate() -> std::result::Result<String, String> {
    open_library("GLMHAL_ROCBLAS", &rocm_dirs(), &NAMES).map(|(_, path)| path)
}

/// A rocBLAS handle on one device.
pub struct RocBlas {
    _lib: Library,
    path: String,
    version: String,
    handle: Mutex<usize>,
    destroy: DestroyFn,
    status_string: Option<StatusStringFn>,
    gemm: GemmFn,
    set_device: SetDeviceFn,
    device: c_int,
    selector: String,
}

// SAFETY: the handle is used under its mutex with its device selected.
unsafe impl Send for RocBlas {}
// SAFETY: as above.
unsafe impl Sync for RocBlas {}

impl RocBlas {
    /// Loads rocBLAS and creates a handle on `device` (selected with
    /// `set_device`, the runtime's hipSetDevice).
    pub fn open(device: usize, set_device: SetDeviceFn, selector: &str) -> Result<Self> {
        let (lib, path) = open_library("GLMHAL_ROCBLAS", &rocm_dirs(), &NAMES)
            .map_err(|why| HalError::backend(selector, "loading rocBLAS", why))?;
        fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T> {
            // SAFETY: each symbol is declared with rocBLAS's C signature.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| HalError::backend("hip", format!("finding {name}"), e.to_string()))
        }
        let create: CreateFn = sym(&lib, "rocblas_create_handle")?;
        let version = sym::<VersionStringFn>(&lib, "rocblas_get_version_string")
            .ok()
            .map(|f| {
                let mut buf = [0 as c_char; 128];
                // SAFETY: `buf` holds the 128 bytes passed; rocBLAS NUL-terminates.
                if unsafe { f(buf.as_mut_ptr(), buf.len()) } == SUCCESS {
                    // SAFETY: NUL-terminated within the buffer (checked status).
                    unsafe { CStr::from_ptr(buf.as_ptr()) }
                        .to_string_lossy()
                        .into_owned()
                } else {
                    String::new()
                }
            })
            .unwrap_or_default();
        let mut blas = RocBlas {
            destroy: sym(&lib, "rocblas_destroy_handle")?,
            status_string: sym(&lib, "rocblas_status_to_string").ok(),
            gemm: sym(&lib, "rocblas_gemm_strided_batched_ex")?,
            _lib: lib,
            path,
            version,
            handle: Mutex::new(0),
            set_device,
            device: device as c_int,
            selector: selector.to_string(),
        };
        blas.current()?;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: `handle` is valid for writes; the device is selected.
        blas.check("rocblas_create_handle", unsafe { create(&mut handle) })?;
        blas.handle = Mutex::new(handle as usize);
        Ok(blas)
    }

    fn current(&self) -> Result<()> {
        // SAFETY: `device` is below the device count (checked when the runtime opened).
        match unsafe { (self.set_device)(self.device) } {
            0 => Ok(()),
            code => Err(HalError::backend(
                &self.selector,
                "hipSetDevice",
                format!("HIP error {code}"),
            )),
        }
    }

    fn check(&self, what: &str, status: c_int) -> Result<()> {
        check_status(&self.selector, "rocBLAS", what, status, self.status_string)
    }
}

fn data_type(dtype: DType) -> Result<c_int> {
    match dtype {
        DType::F32 => Ok(F32),
        DType::F16 => Ok(F16),
        DType::Bf16 => Ok(BF16),
        other => Err(HalError::invalid(
            "hip",
            format!("rocBLAS has no {other} GEMM here"),
        )),
    }
}

impl VendorBlas for RocBlas {
    fn describe(&self) -> String {
        format!("rocBLAS {} ({})", self.version, self.path)
    }

    fn gemm(&self, g: &Gemm, a: DevicePtr, b: DevicePtr, c: DevicePtr) -> Result<()> {
        let ty = data_type(g.dtype)?;
        let op = |t: bool| if t { OP_T } else { OP_N };
        let (alpha, beta) = (1.0f32, g.beta);
        let handle = self
            .handle
            .lock()
            .map_err(|_| HalError::backend(&self.selector, "rocBLAS", "handle poisoned"))?;
        self.current()?;
        // SAFETY: the operands are device addresses of live buffers whose
        // views `plan_gemm` checked; D is C (same leading dim and stride);
        // alpha and beta are host f32 for the f32 compute type.
        let status = unsafe {
            (self.gemm)(
                *handle as Handle,
                op(g.a.transpose),
                op(g.b.transpose),
                g.m,
                g.n,
                g.k,
                (&alpha as *const f32).cast(),
                a as *const c_void,
                ty,
                g.a.ld,
                g.a.batch_stride,
                b as *const c_void,
                ty,
                g.b.ld,
                g.b.batch_stride,
                (&beta as *const f32).cast(),
                c as *const c_void,
                ty,
                g.c.ld,
                g.c.batch_stride,
                c as *mut c_void,
                ty,
                g.c.ld,
                g.c.batch_stride,
                g.batch,
                F32,
                ALGO_STANDARD,
                0,
                0,
            )
        };
        self.check("rocblas_gemm_strided_batched_ex", status)
    }
}

impl Drop for RocBlas {
    fn drop(&mut self) {
        if let Ok(handle) = self.handle.lock() {
            if *handle != 0 && self.current().is_ok() {
                // SAFETY: the handle was created in `open` and is destroyed once.
                unsafe { (self.destroy)(*handle as Handle) };
            }
        }
    }
}
