//! cuBLAS and rocBLAS as one [`VendorBlas`]: both offer a strided-batched
//! GEMM with f32 compute over f32, f16 and bf16 operands, created on a
//! handle that follows the device's default stream. A vendor crate writes a
//! [`GemmTable`] (library names, symbols, enum values); the calls are here.

use std::ffi::{c_char, c_int, c_longlong, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use glmhal_hal::{DType, GpuOptions, HalError, Result};
use libloading::Library;

use super::api::{Binder, ModuleApi, Selection};
use crate::blas::{check_status, open_library, Gemm, StatusStringFn, VendorBlas};
use crate::DevicePtr;

/// One vendor BLAS: where it is, its symbols and its enum values.
#[derive(Debug)]
pub struct GemmTable {
    /// `cuBLAS`, `rocBLAS`.
    pub name: &'static str,
    /// The library file the options name, if they do.
    pub explicit: fn(&GpuOptions) -> Option<&Path>,
    /// The variable the CLI reads that file from, for messages.
    pub variable: &'static str,
    /// File names to look for, preferred first.
    pub files: &'static [&'static str],
    /// Directories to look in besides `LD_LIBRARY_PATH`.
    pub dirs: fn() -> Vec<PathBuf>,
    /// Creates a handle: `cublasCreate_v2`, `rocblas_create_handle`.
    pub create: &'static str,
    /// Destroys it.
    pub destroy: &'static str,
    /// Words for a status code.
    pub status_string: &'static str,
    /// How the version is read.
    pub version: VersionQuery,
    /// The strided-batched GEMM entry point and its argument shape.
    pub gemm: GemmAbi,
    /// No-transpose and transpose operation values.
    pub op: [c_int; 2],
    /// Data-type values for f32, f16 and bf16 operands.
    pub types: [c_int; 3],
    /// The f32 compute type (f32 accumulation, no reduced-precision shortcut).
    pub compute_f32: c_int,
    /// The algorithm selector (the library's default).
    pub algorithm: c_int,
}

/// How a BLAS reports its version.
#[derive(Clone, Copy, Debug)]
pub enum VersionQuery {
    /// `cublasGetVersion_v2(handle, int *)`: major·10000 + minor·100 + patch.
    HandleInteger(&'static str),
    /// `rocblas_get_version_string(char *, size_t)`.
    Text(&'static str),
}

/// The two argument shapes of a strided-batched GEMM.
#[derive(Clone, Copy, Debug)]
pub enum GemmAbi {
    /// `cublasGemmStridedBatchedEx`: C is read and written.
    CublasEx(&'static str),
    /// `rocblas_gemm_strided_batched_ex`: a separate D (here C again), then
    /// a solution index and flags.
    RocblasEx(&'static str),
}

type Handle = *mut c_void;
type CreateFn = unsafe extern "C" fn(*mut Handle) -> c_int;
type DestroyFn = unsafe extern "C" fn(Handle) -> c_int;
type HandleVersionFn = unsafe extern "C" fn(Handle, *mut c_int) -> c_int;
type TextVersionFn = unsafe extern "C" fn(*mut c_char, usize) -> c_int;
type CublasGemmFn = unsafe extern "C" fn(
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
type RocblasGemmFn = unsafe extern "C" fn(
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

#[derive(Clone, Copy)]
enum GemmFn {
    Cublas(CublasGemmFn),
    Rocblas(RocblasGemmFn),
}

impl GemmTable {
    /// The library's path, or why it cannot be loaded (for device listings).
    pub fn locate(&self, options: &GpuOptions) -> std::result::Result<String, String> {
        self.open(options).map(|(_, path)| path)
    }

    fn open(&self, options: &GpuOptions) -> std::result::Result<(Library, String), String> {
        open_library(
            (self.explicit)(options),
            self.variable,
            &(self.dirs)(),
            self.files,
        )
    }

    fn data_type(&self, dtype: DType) -> Result<c_int> {
        match dtype {
            DType::F32 => Ok(self.types[0]),
            DType::F16 => Ok(self.types[1]),
            DType::Bf16 => Ok(self.types[2]),
            other => Err(HalError::invalid(
                self.name,
                format!("{} has no {other} GEMM here", self.name),
            )),
        }
    }
}

/// A vendor BLAS handle on one device.
pub struct GemmLibrary {
    table: &'static GemmTable,
    library: Library,
    path: String,
    version: String,
    handle: Mutex<usize>,
    destroy: DestroyFn,
    status_string: Option<StatusStringFn>,
    gemm: GemmFn,
    api: Arc<ModuleApi>,
    selection: Selection,
    selector: String,
}

// SAFETY: the handle is used under its mutex with its device made current.
unsafe impl Send for GemmLibrary {}
// SAFETY: as above.
unsafe impl Sync for GemmLibrary {}

impl GemmLibrary {
    /// Loads `table`'s library (where `options` say) and creates a handle on
    /// the device `selection` makes current.
    pub fn open(
        table: &'static GemmTable,
        options: &GpuOptions,
        api: Arc<ModuleApi>,
        selection: Selection,
        selector: &str,
    ) -> Result<Self> {
        let (library, path) = table
            .open(options)
            .map_err(|why| HalError::backend(selector, format!("loading {}", table.name), why))?;
        let binder = Binder {
            library: &library,
            backend: api.table.backend,
        };
        let create: CreateFn = binder.get(table.create)?;
        let gemm = match table.gemm {
            GemmAbi::CublasEx(name) => GemmFn::Cublas(binder.get(name)?),
            GemmAbi::RocblasEx(name) => GemmFn::Rocblas(binder.get(name)?),
        };
        let mut blas = GemmLibrary {
            table,
            destroy: binder.get(table.destroy)?,
            status_string: binder.get(table.status_string).ok(),
            gemm,
            path,
            version: String::new(),
            handle: Mutex::new(0),
            api,
            selection,
            selector: selector.to_string(),
            library,
        };
        blas.api.make_current(selection)?;
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: `handle` is valid for writes; the device is current.
        blas.check(table.create, unsafe { create(&mut handle) })?;
        blas.handle = Mutex::new(handle as usize);
        blas.version = blas.read_version(handle);
        Ok(blas)
    }

    fn read_version(&self, handle: Handle) -> String {
        let binder = Binder {
            library: &self.library,
            backend: self.api.table.backend,
        };
        match self.table.version {
            VersionQuery::HandleInteger(name) => {
                let Ok(get) = binder.get::<HandleVersionFn>(name) else {
                    return String::new();
                };
                let mut v = 0;
                // SAFETY: `handle` was just created; `v` is valid for writes.
                unsafe { get(handle, &mut v) };
                format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
            }
            VersionQuery::Text(name) => {
                let Ok(get) = binder.get::<TextVersionFn>(name) else {
                    return String::new();
                };
                let mut buf = [0 as c_char; 128];
                // SAFETY: `buf` holds the 128 bytes passed; the library NUL-terminates.
                if unsafe { get(buf.as_mut_ptr(), buf.len()) } != 0 {
                    return String::new();
                }
                // SAFETY: NUL-terminated within the buffer (checked status).
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            }
        }
    }

    fn check(&self, what: &str, status: c_int) -> Result<()> {
        check_status(
            &self.selector,
            self.table.name,
            what,
            status,
            self.status_string,
        )
    }
}

impl VendorBlas for GemmLibrary {
    fn describe(&self) -> String {
        format!("{} {} ({})", self.table.name, self.version, self.path)
    }

    fn gemm(&self, g: &Gemm, a: DevicePtr, b: DevicePtr, c: DevicePtr) -> Result<()> {
        let (ty, out_ty) = (
            self.table.data_type(g.inputs)?,
            self.table.data_type(g.output)?,
        );
        let op = |t: bool| self.table.op[usize::from(t)];
        let (alpha, beta) = (1.0f32, g.beta);
        let (alpha, beta) = (
            (&alpha as *const f32).cast::<c_void>(),
            (&beta as *const f32).cast::<c_void>(),
        );
        let handle = self
            .handle
            .lock()
            .map_err(|_| HalError::backend(&self.selector, self.table.name, "handle poisoned"))?;
        self.api.make_current(self.selection)?;
        let (compute, algorithm) = (self.table.compute_f32, self.table.algorithm);
        let (h, op_a, op_b) = (*handle as Handle, op(g.a.transpose), op(g.b.transpose));
        let (a, b, c) = (a as *const c_void, b as *const c_void, c as *mut c_void);
        let name = match self.table.gemm {
            GemmAbi::CublasEx(name) | GemmAbi::RocblasEx(name) => name,
        };
        let status = match self.gemm {
            // SAFETY: the operands are device addresses of live buffers whose
            // views `plan_gemm` checked (leading dims, batch strides, offsets);
            // alpha and beta are host f32, as the default pointer mode expects.
            GemmFn::Cublas(f) => unsafe {
                f(
                    h,
                    op_a,
                    op_b,
                    g.m,
                    g.n,
                    g.k,
                    alpha,
                    a,
                    ty,
                    g.a.ld,
                    g.a.batch_stride,
                    b,
                    ty,
                    g.b.ld,
                    g.b.batch_stride,
                    beta,
                    c,
                    out_ty,
                    g.c.ld,
                    g.c.batch_stride,
                    g.batch,
                    compute,
                    algorithm,
                )
            },
            // SAFETY: as above; D is C (same leading dim and stride).
            GemmFn::Rocblas(f) => unsafe {
                f(
                    h,
                    op_a,
                    op_b,
                    g.m,
                    g.n,
                    g.k,
                    alpha,
                    a,
                    ty,
                    g.a.ld,
                    g.a.batch_stride,
                    b,
                    ty,
                    g.b.ld,
                    g.b.batch_stride,
                    beta,
                    c,
                    out_ty,
                    g.c.ld,
                    g.c.batch_stride,
                    c,
                    out_ty,
                    g.c.ld,
                    g.c.batch_stride,
                    g.batch,
                    compute,
                    algorithm,
                    0,
                    0,
                )
            },
        };
        self.check(name, status)
    }
}

impl Drop for GemmLibrary {
    fn drop(&mut self) {
        if let Ok(handle) = self.handle.lock() {
            if *handle != 0 && self.api.make_current(self.selection).is_ok() {
                // SAFETY: the handle was created in `open` and is destroyed once.
                unsafe { (self.destroy)(*handle as Handle) };
            }
        }
    }
}
