//! cuBLAS, loaded at run time, for f32/f16/bf16 products with f32 compute
//! (`cublasGemmStridedBatchedEx`, `CUBLAS_COMPUTE_32F`). Calls go on the
//! context's default stream, the one every kernel launch uses, so they are
//! ordered with the rest of a step. Without the library the tree's own
//! kernels run the products, and `glmhal devices` says so.

use std::ffi::{c_int, c_longlong, c_void};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use glmhal_gpu_kernels::blas::{check_status, open_library, Gemm, StatusStringFn, VendorBlas};
use glmhal_gpu_kernels::runtime::DevicePtr;
use glmhal_hal::{DType, HalError, Result};
use libloading::Library;

use crate::loader::CtxSetFn;

/// CUBLAS_OP_N / CUBLAS_OP_T.
const OP_N: c_int = 0;
const OP_T: c_int = 1;
/// cudaDataType: CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF.
const R_32F: c_int = 0;
const R_16F: c_int = 2;
const R_16BF: c_int = 14;
/// CUBLAS_COMPUTE_32F: f32 accumulation, no TF32 or f16 shortcuts.
const COMPUTE_32F: c_int = 68;
/// CUBLAS_GEMM_DEFAULT.
const GEMM_DEFAULT: c_int = -1;

type Handle = *mut c_void;
type CreateFn = unsafe extern "C" fn(*mut Handle) -> c_int;
type DestroyFn = unsafe extern "C" fn(Handle) -> c_int;
type VersionFn = unsafe extern "C" fn(Handle, *mut c_int) -> c_int;
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
    c_longlong,
    *const c_void,
    c_int,
    c_int,
    c_longlong,
    *const c_void,
    *mut c_void,
    c_int,
    c_int,
    c_longlong,
    c_int,
    c_int,
    c_int,
) -> c_int;

/// Where cuBLAS is looked for besides `GLMHAL_CUBLAS` and `LD_LIBRARY_PATH`.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["CUDA_PATH", "CUDA_HOME"] {
        if let Ok(root) = std::env::var(var) {
            dirs.push(Path::new(&root).join("lib64"));
        }
    }
    dirs.extend(["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"].map(PathBuf::from));
    dirs
}

const NAMES: [&str; 3] = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"];

/// Opens the library only, for device listings: its path, or why not.
pub fn locate() -> std::result::Result<String, String> {
    open_library("GLMHAL_CUBLAS", &search_dirs(), &NAMES).map(|(_, path)| path)
}

/// A cuBLAS handle bound to one device's primary context.
pub struct CuBlas {
    _lib: Library,
    path: String,
    version: c_int,
    handle: Mutex<usize>,
    destroy: DestroyFn,
    status_string: Option<StatusStringFn>,
    gemm: GemmFn,
    ctx_set: CtxSetFn,
    context: usize,
    selector: String,
}

// SAFETY: the handle is used under its mutex with the context made current.
unsafe impl Send for CuBlas {}
// SAFETY: as above.
unsafe impl Sync for CuBlas {}

impl CuBlas {
    /// Loads cuBLAS and creates a handle in `context` (made current with
    /// `ctx_set`, the driver's cuCtxSetCurrent).
    pub fn open(context: usize, ctx_set: CtxSetFn, selector: &str) -> Result<Self> {
        let (lib, path) = open_library("GLMHAL_CUBLAS", &search_dirs(), &NAMES)
            .map_err(|why| HalError::backend(selector, "loading cuBLAS", why))?;
        fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T> {
            // SAFETY: each symbol is declared with cuBLAS's C signature.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| HalError::backend("cuda", format!("finding {name}"), e.to_string()))
        }
        let create: CreateFn = sym(&lib, "cublasCreate_v2")?;
        let get_version: VersionFn = sym(&lib, "cublasGetVersion_v2")?;
        let mut blas = CuBlas {
            destroy: sym(&lib, "cublasDestroy_v2")?,
            status_string: sym(&lib, "cublasGetStatusString").ok(),
            gemm: sym(&lib, "cublasGemmStridedBatchedEx")?,
            _lib: lib,
            path,
            version: 0,
            handle: Mutex::new(0),
            ctx_set,
            context,
            selector: selector.to_string(),
        };
        blas.current()?;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: `handle` is valid for writes; the context is current.
        blas.check("cublasCreate", unsafe { create(&mut handle) })?;
        let mut version = 0;
        // SAFETY: `handle` was just created; `version` is valid for writes.
        unsafe { get_version(handle, &mut version) };
        blas.version = version;
        blas.handle = Mutex::new(handle as usize);
        Ok(blas)
    }

    fn current(&self) -> Result<()> {
        // SAFETY: the context was retained by the runtime and outlives this handle.
        match unsafe { (self.ctx_set)(self.context as *mut c_void) } {
            0 => Ok(()),
            code => Err(HalError::backend(
                &self.selector,
                "cuCtxSetCurrent",
                format!("CUDA error {code}"),
            )),
        }
    }

    fn check(&self, what: &str, status: c_int) -> Result<()> {
        check_status(&self.selector, "cuBLAS", what, status, self.status_string)
    }
}

fn data_type(dtype: DType) -> Result<c_int> {
    match dtype {
        DType::F32 => Ok(R_32F),
        DType::F16 => Ok(R_16F),
        DType::Bf16 => Ok(R_16BF),
        other => Err(HalError::invalid(
            "cuda",
            format!("cuBLAS has no {other} GEMM here"),
        )),
    }
}

impl VendorBlas for CuBlas {
    fn describe(&self) -> String {
        format!(
            "cuBLAS {}.{}.{} ({})",
            self.version / 10000,
            self.version / 100 % 100,
            self.version % 100,
            self.path
        )
    }

    fn gemm(&self, g: &Gemm, a: DevicePtr, b: DevicePtr, c: DevicePtr) -> Result<()> {
        let ty = data_type(g.dtype)?;
        let op = |t: bool| if t { OP_T } else { OP_N };
        let (alpha, beta) = (1.0f32, g.beta);
        let handle = self
            .handle
            .lock()
            .map_err(|_| HalError::backend(&self.selector, "cuBLAS", "handle poisoned"))?;
        self.current()?;
        // SAFETY: the operands are device addresses of live buffers whose
        // views `plan_gemm` checked (leading dims, batch strides, offsets);
        // alpha and beta are host f32, as the default pointer mode expects.
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
                c as *mut c_void,
                ty,
                g.c.ld,
                g.c.batch_stride,
                g.batch,
                COMPUTE_32F,
                GEMM_DEFAULT,
            )
        };
        self.check("cublasGemmStridedBatchedEx", status)
    }
}

impl Drop for CuBlas {
    fn drop(&mut self) {
        if let Ok(handle) = self.handle.lock() {
            if *handle != 0 && self.current().is_ok() {
                // SAFETY: the handle was created in `open` and is destroyed once.
                unsafe { (self.destroy)(*handle as Handle) };
            }
        }
    }
}
