//! The HIP runtime's symbol table, loaded at run time from ROCm or Hygon DTK.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::path::PathBuf;

use glmhal_hal::{HalError, Result};
use libloading::Library;

/// hipSuccess.
const SUCCESS: c_int = 0;
/// hipErrorNoDevice.
pub const NO_DEVICE: c_int = 100;

type InitFn = unsafe extern "C" fn(c_uint) -> c_int;
type CountFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type NameFn = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type TotalMemFn = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
type AttributeFn = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
type VersionFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type ErrorFn = unsafe extern "C" fn(c_int) -> *const c_char;
type PropertiesFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
pub(crate) type SetDeviceFn = unsafe extern "C" fn(c_int) -> c_int;
type SyncFn = unsafe extern "C" fn() -> c_int;
type AllocFn = unsafe extern "C" fn(*mut u64, usize) -> c_int;
type FreeFn = unsafe extern "C" fn(u64) -> c_int;
type MemcpyFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;
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

/// hipErrorOutOfMemory.
pub const OUT_OF_MEMORY: c_int = 2;
/// hipMemcpyHostToDevice.
pub const HOST_TO_DEVICE: c_int = 1;
/// hipMemcpyDeviceToHost.
pub const DEVICE_TO_HOST: c_int = 2;

/// The runtime calls that run work, bound once.
#[derive(Clone, Copy)]
pub(crate) struct Exec {
    pub set_device: SetDeviceFn,
    pub sync: SyncFn,
    pub alloc: AllocFn,
    pub free: FreeFn,
    pub memcpy: MemcpyFn,
    pub mem_info: MemInfoFn,
    pub module_load: ModuleLoadFn,
    pub get_function: GetFunctionFn,
    pub launch: LaunchFn,
}

/// Device attributes read (hipDeviceAttribute_t values).
pub mod attribute {
    /// Compute units.
    pub const MULTIPROCESSOR_COUNT: i32 = 63;
    /// Wavefront width.
    pub const WARP_SIZE: i32 = 87;
}

/// ROCm and Hygon DTK library directories: `$ROCM_PATH/lib`, `/opt/rocm/lib`,
/// then DTK's.
pub fn rocm_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(root) = std::env::var("ROCM_PATH") {
        dirs.push(PathBuf::from(root).join("lib"));
    }
    dirs.extend(["/opt/rocm/lib", "/opt/dtk/lib", "/opt/dtk/hip/lib"].map(PathBuf::from));
    dirs
}

/// Libraries tried, in order: `$ROCM_PATH/lib`, `/opt/rocm/lib`, Hygon DTK,
/// then whatever the loader finds by name.
pub fn candidates() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rocm_dirs()
        .iter()
        .flat_map(|d| ["libamdhip64.so", "libgalaxyhip.so.5"].map(|n| d.join(n)))
        .filter(|p| p.exists())
        .collect();
    // Bare names: the system loader's own search (LD_LIBRARY_PATH, ld.so.cache).
    files.extend(
        [
            "libamdhip64.so",
            "libamdhip64.so.6",
            "libamdhip64.so.5",
            "libgalaxyhip.so.5",
        ]
        .map(PathBuf::from),
    );
    files
}

/// The loaded HIP runtime.
pub struct Hip {
    _lib: Library,
    /// Where it was loaded from.
    pub path: String,
    init: InitFn,
    count: CountFn,
    name: NameFn,
    total_mem: TotalMemFn,
    attribute: AttributeFn,
    runtime_version: VersionFn,
    driver_version: VersionFn,
    error: ErrorFn,
    /// ROCm 6's `hipGetDevicePropertiesR0600`, or the legacy entry point.
    properties: Option<(PropertiesFn, usize)>,
    /// Execution entry points (see `runtime.rs`).
    pub(crate) exec: Exec,
}

impl Hip {
    /// Loads the first runtime of [`candidates`] that has the symbols.
    pub fn load() -> Result<Self> {
        let mut tried = Vec::new();
        for path in candidates() {
            // SAFETY: loading the HIP runtime runs its initializers, which have no preconditions.
            match unsafe { Library::new(&path) } {
                Ok(lib) => return Self::bind(lib, path.display().to_string()),
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(HalError::Unavailable {
            backend: "hip".into(),
            reason: format!(
                "the HIP runtime (libamdhip64 or Hygon DTK's libgalaxyhip) was not found under $ROCM_PATH/lib, /opt/rocm/lib, /opt/dtk or the system paths ({})",
                tried.first().cloned().unwrap_or_default()
            ),
        })
    }

    fn bind(lib: Library, path: String) -> Result<Self> {
        fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T> {
            // SAFETY: each symbol is declared with the HIP runtime's C signature.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| HalError::backend("hip", format!("finding {name}"), e.to_string()))
        }
        // ROCm >= 6 headers map hipGetDeviceProperties to the R0600 symbol, whose
        // struct is larger; ROCm 5 and DTK have only the legacy one.
        let properties = sym::<PropertiesFn>(&lib, "hipGetDevicePropertiesR0600")
            .map(|f| (f, 1160))
            .or_else(|_| sym::<PropertiesFn>(&lib, "hipGetDeviceProperties").map(|f| (f, 396)))
            .ok();
        Ok(Hip {
            init: sym(&lib, "hipInit")?,
            count: sym(&lib, "hipGetDeviceCount")?,
            name: sym(&lib, "hipDeviceGetName")?,
            total_mem: sym(&lib, "hipDeviceTotalMem")?,
            attribute: sym(&lib, "hipDeviceGetAttribute")?,
            runtime_version: sym(&lib, "hipRuntimeGetVersion")?,
            driver_version: sym(&lib, "hipDriverGetVersion")?,
            error: sym(&lib, "hipGetErrorString")?,
            properties,
            exec: Exec {
                set_device: sym(&lib, "hipSetDevice")?,
                sync: sym(&lib, "hipDeviceSynchronize")?,
                alloc: sym(&lib, "hipMalloc")?,
                free: sym(&lib, "hipFree")?,
                memcpy: sym(&lib, "hipMemcpy")?,
                mem_info: sym(&lib, "hipMemGetInfo")?,
                module_load: sym(&lib, "hipModuleLoadData")?,
                get_function: sym(&lib, "hipModuleGetFunction")?,
                launch: sym(&lib, "hipModuleLaunchKernel")?,
            },
            path,
            _lib: lib,
        })
    }

    /// The runtime's words for an error code.
    pub fn error_text(&self, code: c_int) -> String {
        // SAFETY: returns a static string for any code.
        let p = unsafe { (self.error)(code) };
        if p.is_null() {
            format!("HIP error {code}")
        } else {
            // SAFETY: non-null, NUL-terminated, static.
            format!(
                "{} ({code})",
                unsafe { CStr::from_ptr(p) }.to_string_lossy()
            )
        }
    }

    /// `Err` with the runtime's words unless `code` is success.
    pub fn check(&self, what: &str, code: c_int) -> Result<()> {
        if code == SUCCESS {
            Ok(())
        } else {
            Err(HalError::backend("hip", what, self.error_text(code)))
        }
    }

    /// Initializes the runtime; `Ok(false)` when it reports no device.
    pub fn init(&self) -> Result<bool> {
        // SAFETY: hipInit takes flags (0) and no pointers.
        match unsafe { (self.init)(0) } {
            SUCCESS => Ok(true),
            // ROCm 5 answers hipErrorNoDevice or hipErrorInvalidDevice (101) without a GPU.
            NO_DEVICE | 101 => Ok(false),
            other => self.check("hipInit", other).map(|_| false),
        }
    }

    /// Devices the runtime sees (0 when it reports hipErrorNoDevice).
    pub fn device_count(&self) -> Result<usize> {
        let mut n: c_int = 0;
        // SAFETY: `n` is valid for writes.
        match unsafe { (self.count)(&mut n) } {
            SUCCESS => Ok(n.max(0) as usize),
            NO_DEVICE => Ok(0),
            other => self.check("hipGetDeviceCount", other).map(|_| 0),
        }
    }

    /// (runtime, driver) versions as HIP encodes them.
    pub fn versions(&self) -> (i32, i32) {
        let (mut rt, mut drv) = (0, 0);
        // SAFETY: both pointers are valid for writes.
        unsafe {
            (self.runtime_version)(&mut rt);
            (self.driver_version)(&mut drv);
        }
        (rt, drv)
    }

    /// Device `i`'s name.
    pub fn name(&self, i: usize) -> Result<String> {
        let mut buf = [0 as c_char; 256];
        // SAFETY: `buf` holds 256 bytes, as passed.
        self.check("hipDeviceGetName", unsafe {
            (self.name)(buf.as_mut_ptr(), 256, i as c_int)
        })?;
        // SAFETY: the runtime NUL-terminates within the buffer.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// Device `i`'s memory in bytes.
    pub fn total_memory(&self, i: usize) -> Result<u64> {
        let mut bytes = 0usize;
        // SAFETY: `bytes` is valid for writes.
        self.check("hipDeviceTotalMem", unsafe {
            (self.total_mem)(&mut bytes, i as c_int)
        })?;
        Ok(bytes as u64)
    }

    /// An integer attribute of device `i`.
    pub fn attribute(&self, i: usize, attr: i32) -> Result<i32> {
        let mut v = 0;
        // SAFETY: `v` is valid for writes.
        self.check("hipDeviceGetAttribute", unsafe {
            (self.attribute)(&mut v, attr, i as c_int)
        })?;
        Ok(v)
    }

    /// Device `i`'s `gcnArchName` without feature suffixes (`gfx90a`), from
    /// the properties struct (into a zeroed 4 KiB buffer, larger than either layout).
    pub fn arch(&self, i: usize) -> Option<String> {
        let (get, offset) = self.properties?;
        let mut buf = vec![0u8; 4096];
        // SAFETY: the buffer is larger than every known hipDeviceProp_t.
        if unsafe { get(buf.as_mut_ptr().cast(), i as c_int) } != SUCCESS {
            return None;
        }
        let raw = &buf[offset..offset + 256];
        let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
        let name = String::from_utf8_lossy(&raw[..end]).into_owned();
        let arch = name.split(':').next().unwrap_or("").to_string();
        arch.starts_with("gfx").then_some(arch)
    }
}
