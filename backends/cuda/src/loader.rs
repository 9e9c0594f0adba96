//! The NVIDIA driver API's symbol table (libcuda), loaded at run time.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::path::PathBuf;

use glmhal_hal::{HalError, Result};
use libloading::Library;

/// CUDA_SUCCESS.
const SUCCESS: c_int = 0;
/// CUDA_ERROR_NO_DEVICE.
pub const NO_DEVICE: c_int = 100;
/// CUDA_ERROR_OUT_OF_MEMORY.
pub const OUT_OF_MEMORY: c_int = 2;
/// CUDA_ERROR_INSUFFICIENT_DRIVER.
pub const DRIVER_TOO_OLD: c_int = 35;

type InitFn = unsafe extern "C" fn(c_uint) -> c_int;
type CountFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type NameFn = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type TotalMemFn = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
type AttributeFn = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
type VersionFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type ErrorFn = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;
type CtxRetainFn = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;
pub(crate) type CtxSetFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type SyncFn = unsafe extern "C" fn() -> c_int;
type AllocFn = unsafe extern "C" fn(*mut u64, usize) -> c_int;
type FreeFn = unsafe extern "C" fn(u64) -> c_int;
type HtoDFn = unsafe extern "C" fn(u64, *const c_void, usize) -> c_int;
type DtoHFn = unsafe extern "C" fn(*mut c_void, u64, usize) -> c_int;
type MemInfoFn = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;
type ModuleLoadFn = unsafe extern "C" fn(*mut *mut c_void, *const c_void) -> c_int;
type GetFunctionFn = unsafe extern "C" fn(*mut *mut c_void, *mut c_void, *const c_char) -> c_int;
type LaunchFn = unsafe extern "C" fn(
    *mut c_void,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    c_uint,
    *mut c_void,
    *mut *mut c_void,
    *mut *mut c_void,
) -> c_int;

/// Device attributes read (CUdevice_attribute values).
pub mod attribute {
    /// Streaming multiprocessors.
    pub const MULTIPROCESSOR_COUNT: i32 = 16;
    /// Compute capability, major.
    pub const CC_MAJOR: i32 = 75;
    /// Compute capability, minor.
    pub const CC_MINOR: i32 = 76;
    /// Core clock, kHz.
    pub const CLOCK_KHZ: i32 = 13;
    /// Memory clock, kHz.
    pub const MEMORY_CLOCK_KHZ: i32 = 36;
    /// Memory bus width, bits.
    pub const MEMORY_BUS_BITS: i32 = 37;
}

/// The loaded driver.
pub struct Cuda {
    _lib: Library,
    /// Where it was loaded from.
    pub path: String,
    init: InitFn,
    count: CountFn,
    name: NameFn,
    total_mem: TotalMemFn,
    attribute: AttributeFn,
    driver_version: VersionFn,
    error: ErrorFn,
    /// Execution entry points (see `runtime.rs`).
    pub(crate) exec: Exec,
}

/// The driver calls that run work, bound once.
#[derive(Clone, Copy)]
pub(crate) struct Exec {
    pub ctx_retain: CtxRetainFn,
    pub ctx_set: CtxSetFn,
    pub ctx_sync: SyncFn,
    pub alloc: AllocFn,
    pub free: FreeFn,
    pub htod: HtoDFn,
    pub dtoh: DtoHFn,
    pub mem_info: MemInfoFn,
    pub module_load: ModuleLoadFn,
    pub get_function: GetFunctionFn,
    pub launch: LaunchFn,
}

impl Cuda {
    /// Loads `libcuda.so.1` (the driver's name on Linux), then `libcuda.so`.
    pub fn load() -> Result<Self> {
        let mut tried = Vec::new();
        for path in ["libcuda.so.1", "libcuda.so"].map(PathBuf::from) {
            // SAFETY: loading the driver runs its initializers, which have no preconditions.
            match unsafe { Library::new(&path) } {
                Ok(lib) => return Self::bind(lib, path.display().to_string()),
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(HalError::Unavailable {
            backend: "cuda".into(),
            reason: format!(
                "the NVIDIA driver library (libcuda.so.1) was not found: no NVIDIA driver is installed ({})",
                tried.first().cloned().unwrap_or_default()
            ),
        })
    }

    fn bind(lib: Library, path: String) -> Result<Self> {
        fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T> {
            // SAFETY: each symbol is declared with the driver API's C signature.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| HalError::backend("cuda", format!("finding {name}"), e.to_string()))
        }
        Ok(Cuda {
            init: sym(&lib, "cuInit")?,
            count: sym(&lib, "cuDeviceGetCount")?,
            name: sym(&lib, "cuDeviceGetName")?,
            total_mem: sym(&lib, "cuDeviceTotalMem_v2")?,
            attribute: sym(&lib, "cuDeviceGetAttribute")?,
            driver_version: sym(&lib, "cuDriverGetVersion")?,
            error: sym(&lib, "cuGetErrorString")?,
            exec: Exec {
                ctx_retain: sym(&lib, "cuDevicePrimaryCtxRetain")?,
                ctx_set: sym(&lib, "cuCtxSetCurrent")?,
                ctx_sync: sym(&lib, "cuCtxSynchronize")?,
                alloc: sym(&lib, "cuMemAlloc_v2")?,
                free: sym(&lib, "cuMemFree_v2")?,
                htod: sym(&lib, "cuMemcpyHtoD_v2")?,
                dtoh: sym(&lib, "cuMemcpyDtoH_v2")?,
                mem_info: sym(&lib, "cuMemGetInfo_v2")?,
                module_load: sym(&lib, "cuModuleLoadData")?,
                get_function: sym(&lib, "cuModuleGetFunction")?,
                launch: sym(&lib, "cuLaunchKernel")?,
            },
            path,
            _lib: lib,
        })
    }

    /// The driver's words for an error code.
    pub fn error_text(&self, code: c_int) -> String {
        let mut p: *const c_char = std::ptr::null();
        // SAFETY: `p` is valid for writes; the driver stores a static string.
        if unsafe { (self.error)(code, &mut p) } != SUCCESS || p.is_null() {
            return format!("CUDA error {code}");
        }
        // SAFETY: non-null, NUL-terminated, static.
        format!(
            "{} ({code})",
            unsafe { CStr::from_ptr(p) }.to_string_lossy()
        )
    }

    /// `Err` with the driver's words unless `code` is success.
    pub fn check(&self, what: &str, code: c_int) -> Result<()> {
        if code == SUCCESS {
            Ok(())
        } else {
            Err(HalError::backend("cuda", what, self.error_text(code)))
        }
    }

    /// cuInit: `Ok(None)` on success, `Ok(Some(code))` for the codes that mean
    /// "no device" or "driver too old", errors otherwise.
    pub fn init(&self) -> Result<Option<c_int>> {
        // SAFETY: cuInit takes flags (0) and no pointers.
        match unsafe { (self.init)(0) } {
            SUCCESS => Ok(None),
            code @ (NO_DEVICE | DRIVER_TOO_OLD) => Ok(Some(code)),
            other => self.check("cuInit", other).map(|_| None),
        }
    }

    /// Devices the driver sees.
    pub fn device_count(&self) -> Result<usize> {
        let mut n = 0;
        // SAFETY: `n` is valid for writes.
        self.check("cuDeviceGetCount", unsafe { (self.count)(&mut n) })?;
        Ok(n.max(0) as usize)
    }

    /// The driver version as CUDA encodes it (12080 = 12.8).
    pub fn driver_version(&self) -> i32 {
        let mut v = 0;
        // SAFETY: `v` is valid for writes.
        unsafe { (self.driver_version)(&mut v) };
        v
    }

    /// Device `i`'s name.
    pub fn name(&self, i: usize) -> Result<String> {
        let mut buf = [0 as c_char; 256];
        // SAFETY: `buf` holds 256 bytes, as passed.
        self.check("cuDeviceGetName", unsafe {
            (self.name)(buf.as_mut_ptr(), 256, i as c_int)
        })?;
        // SAFETY: the driver NUL-terminates within the buffer.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// Device `i`'s memory in bytes.
    pub fn total_memory(&self, i: usize) -> Result<u64> {
        let mut bytes = 0usize;
        // SAFETY: `bytes` is valid for writes.
        self.check("cuDeviceTotalMem", unsafe {
            (self.total_mem)(&mut bytes, i as c_int)
        })?;
        Ok(bytes as u64)
    }

    /// An integer attribute of device `i`.
    pub fn attribute(&self, i: usize, attr: i32) -> Result<i32> {
        let mut v = 0;
        // SAFETY: `v` is valid for writes.
        self.check("cuDeviceGetAttribute", unsafe {
            (self.attribute)(&mut v, attr, i as c_int)
        })?;
        Ok(v)
    }
}
