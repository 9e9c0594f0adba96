//! An [`ApiTable`] bound to a loaded library: the entry points as function
//! pointers, and safe methods over them.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

use glmhal_hal::{HalError, Result};
use libloading::Library;

use super::table::{ApiTable, ErrorString, Select};
use crate::DevicePtr;

/// Success in both APIs.
const SUCCESS: c_int = 0;

type InitFn = unsafe extern "C" fn(c_uint) -> c_int;
type CountFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type NameFn = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;
type TotalMemFn = unsafe extern "C" fn(*mut usize, c_int) -> c_int;
type AttributeFn = unsafe extern "C" fn(*mut c_int, c_int, c_int) -> c_int;
type VersionFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type ErrorOutFn = unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int;
type ErrorReturnedFn = unsafe extern "C" fn(c_int) -> *const c_char;
type CtxRetainFn = unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int;
type CtxSetFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type SetDeviceFn = unsafe extern "C" fn(c_int) -> c_int;
type SyncFn = unsafe extern "C" fn() -> c_int;
type AllocFn = unsafe extern "C" fn(*mut u64, usize) -> c_int;
type FreeFn = unsafe extern "C" fn(u64) -> c_int;
type MemInfoFn = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;
type HtoDFn = unsafe extern "C" fn(u64, *const c_void, usize) -> c_int;
type DtoHFn = unsafe extern "C" fn(*mut c_void, u64, usize) -> c_int;
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

#[derive(Clone, Copy)]
enum ErrorFn {
    Out(ErrorOutFn),
    Returned(ErrorReturnedFn),
}

#[derive(Clone, Copy)]
enum SelectFn {
    PrimaryContext { retain: CtxRetainFn, set: CtxSetFn },
    Device(SetDeviceFn),
}

/// The bound entry points.
#[derive(Clone, Copy)]
struct Entries {
    init: InitFn,
    count: CountFn,
    name: NameFn,
    total_memory: TotalMemFn,
    attribute: AttributeFn,
    driver_version: VersionFn,
    error: ErrorFn,
    select: SelectFn,
    synchronize: SyncFn,
    alloc: AllocFn,
    free: FreeFn,
    memory_info: MemInfoFn,
    copy_to_device: HtoDFn,
    copy_to_host: DtoHFn,
    module_load: ModuleLoadFn,
    module_function: GetFunctionFn,
    launch: LaunchFn,
}

/// What initialization found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Init {
    /// Devices may be counted and used.
    Ready,
    /// The library reports no device.
    NoDevice,
    /// The driver is too old; its words.
    DriverTooOld(String),
}

/// How a device is current for calls on the calling thread.
#[derive(Clone, Copy, Debug)]
pub enum Selection {
    /// A retained primary context (CUDA), set current before each call.
    Context(usize),
    /// A device index (HIP), set before each call.
    Device(c_int),
}

/// A loaded vendor library with its [`ApiTable`] bound.
pub struct ModuleApi {
    library: Library,
    /// Where it was loaded from.
    pub path: String,
    /// The vendor's names and codes.
    pub table: &'static ApiTable,
    entries: Entries,
}

impl ModuleApi {
    /// Loads the first of the table's libraries that opens and binds it.
    pub fn load(table: &'static ApiTable) -> Result<Self> {
        let mut tried = Vec::new();
        for path in (table.libraries)() {
            // SAFETY: loading a vendor runtime runs its initializers, which have no preconditions.
            match unsafe { Library::new(&path) } {
                Ok(library) => return Self::bind(table, library, path.display().to_string()),
                Err(e) => tried.push(e.to_string()),
            }
        }
        Err(HalError::Unavailable {
            backend: table.backend.into(),
            reason: format!(
                "{} ({})",
                table.missing,
                tried.first().cloned().unwrap_or_default()
            ),
        })
    }

    fn bind(table: &'static ApiTable, library: Library, path: String) -> Result<Self> {
        let binder = Binder {
            library: &library,
            backend: table.backend,
        };
        let error = match table.error_string {
            ErrorString::OutParameter(name) => ErrorFn::Out(binder.get(name)?),
            ErrorString::Returned(name) => ErrorFn::Returned(binder.get(name)?),
        };
        let select = match table.select {
            Select::PrimaryContext {
                retain,
                set_current,
            } => SelectFn::PrimaryContext {
                retain: binder.get(retain)?,
                set: binder.get(set_current)?,
            },
            Select::Device(name) => SelectFn::Device(binder.get(name)?),
        };
        let entries = Entries {
            init: binder.get(table.init)?,
            count: binder.get(table.device_count)?,
            name: binder.get(table.device_name)?,
            total_memory: binder.get(table.total_memory)?,
            attribute: binder.get(table.attribute)?,
            driver_version: binder.get(table.driver_version)?,
            error,
            select,
            synchronize: binder.get(table.synchronize)?,
            alloc: binder.get(table.alloc)?,
            free: binder.get(table.free)?,
            memory_info: binder.get(table.memory_info)?,
            copy_to_device: binder.get(table.copy_to_device)?,
            copy_to_host: binder.get(table.copy_to_host)?,
            module_load: binder.get(table.module_load)?,
            module_function: binder.get(table.module_function)?,
            launch: binder.get(table.launch)?,
        };
        Ok(ModuleApi {
            library,
            path,
            table,
            entries,
        })
    }

    /// A vendor-only entry point from the same library (HIP's device
    /// properties, its runtime version), declared by the caller as `T`.
    ///
    /// # Safety
    /// `T` must be the C signature of the symbol `name`.
    pub unsafe fn extra<T: Copy>(&self, name: &str) -> Result<T> {
        Binder {
            library: &self.library,
            backend: self.table.backend,
        }
        .get(name)
    }

    /// The library's words for an error code.
    pub fn error_text(&self, code: c_int) -> String {
        let text = match self.entries.error {
            ErrorFn::Out(f) => {
                let mut p: *const c_char = std::ptr::null();
                // SAFETY: `p` is valid for writes; the driver stores a static string.
                let status = unsafe { f(code, &mut p) };
                if status == SUCCESS {
                    p
                } else {
                    std::ptr::null()
                }
            }
            // SAFETY: returns a static string (or null) for any code.
            ErrorFn::Returned(f) => unsafe { f(code) },
        };
        if text.is_null() {
            return format!("{} error {code}", self.table.backend.to_uppercase());
        }
        // SAFETY: non-null, NUL-terminated, static.
        let words = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        format!("{words} ({code})")
    }

    /// `Err` with the library's words unless `code` is success.
    pub fn check(&self, what: &str, code: c_int) -> Result<()> {
        if code == SUCCESS {
            Ok(())
        } else {
            Err(HalError::backend(
                self.table.backend,
                what,
                self.error_text(code),
            ))
        }
    }

    /// Initializes the library.
    pub fn init(&self) -> Result<Init> {
        // SAFETY: takes flags (0) and no pointers.
        let code = unsafe { (self.entries.init)(0) };
        let codes = &self.table.codes;
        if code == SUCCESS {
            Ok(Init::Ready)
        } else if codes.no_device.contains(&code) {
            Ok(Init::NoDevice)
        } else if codes.driver_too_old.contains(&code) {
            Ok(Init::DriverTooOld(self.error_text(code)))
        } else {
            self.check(self.table.init, code).map(|_| Init::NoDevice)
        }
    }

    /// Devices the library sees (0 where counting reports no device).
    pub fn device_count(&self) -> Result<usize> {
        let mut n: c_int = 0;
        // SAFETY: `n` is valid for writes.
        let code = unsafe { (self.entries.count)(&mut n) };
        if self.table.codes.no_device.contains(&code) {
            return Ok(0);
        }
        self.check(self.table.device_count, code)?;
        Ok(n.max(0) as usize)
    }

    /// The driver version as the vendor encodes it.
    pub fn driver_version(&self) -> i32 {
        let mut v = 0;
        // SAFETY: `v` is valid for writes.
        unsafe { (self.entries.driver_version)(&mut v) };
        v
    }

    /// Device `i`'s name.
    pub fn name(&self, i: usize) -> Result<String> {
        let mut buf = [0 as c_char; 256];
        // SAFETY: `buf` holds 256 bytes, as passed.
        self.check(self.table.device_name, unsafe {
            (self.entries.name)(buf.as_mut_ptr(), 256, i as c_int)
        })?;
        // SAFETY: the library NUL-terminates within the buffer.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// Device `i`'s memory in bytes.
    pub fn total_memory(&self, i: usize) -> Result<u64> {
        let mut bytes = 0usize;
        // SAFETY: `bytes` is valid for writes.
        self.check(self.table.total_memory, unsafe {
            (self.entries.total_memory)(&mut bytes, i as c_int)
        })?;
        Ok(bytes as u64)
    }

    /// An integer attribute of device `i`.
    pub fn attribute(&self, i: usize, attribute: i32) -> Result<i32> {
        let mut v = 0;
        // SAFETY: `v` is valid for writes.
        self.check(self.table.attribute, unsafe {
            (self.entries.attribute)(&mut v, attribute, i as c_int)
        })?;
        Ok(v)
    }

    /// Prepares device `index` for use: retains its primary context (CUDA)
    /// or remembers the index (HIP).
    pub fn select(&self, index: usize) -> Result<Selection> {
        match self.entries.select {
            SelectFn::PrimaryContext { retain, .. } => {
                let mut context: *mut c_void = std::ptr::null_mut();
                // SAFETY: `context` is valid for writes; `index` is below the device count.
                self.check("retaining the primary context", unsafe {
                    retain(&mut context, index as c_int)
                })?;
                Ok(Selection::Context(context as usize))
            }
            SelectFn::Device(_) => Ok(Selection::Device(index as c_int)),
        }
    }

    /// Makes `selection` current on the calling thread.
    pub fn make_current(&self, selection: Selection) -> Result<()> {
        let code = match (self.entries.select, selection) {
            // SAFETY: the context was retained by `select` and lives as long as the library.
            (SelectFn::PrimaryContext { set, .. }, Selection::Context(c)) => unsafe {
                set(c as *mut c_void)
            },
            // SAFETY: the index was below the device count when selected.
            (SelectFn::Device(set), Selection::Device(d)) => unsafe { set(d) },
            _ => {
                return Err(HalError::backend(
                    self.table.backend,
                    "selecting a device",
                    "a selection made by another vendor's library",
                ))
            }
        };
        self.check("making the device current", code)
    }

    /// Allocates `bytes` (out of memory is `HalError::OutOfMemory` with what is free).
    pub fn alloc(&self, selector: &str, bytes: usize) -> Result<DevicePtr> {
        let mut ptr = 0u64;
        // SAFETY: `ptr` is valid for writes.
        let code = unsafe { (self.entries.alloc)(&mut ptr, bytes) };
        if code == self.table.codes.out_of_memory {
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: both pointers are valid for writes.
            unsafe { (self.entries.memory_info)(&mut free, &mut total) };
            return Err(HalError::OutOfMemory {
                backend: selector.to_string(),
                requested: bytes,
                available: Some(free),
            });
        }
        self.check(self.table.alloc, code)?;
        Ok(ptr)
    }

    /// Frees memory from [`ModuleApi::alloc`].
    ///
    /// # Safety
    /// `ptr` came from `alloc` and is freed once.
    pub unsafe fn free(&self, ptr: DevicePtr) {
        // SAFETY: the caller's contract.
        unsafe { (self.entries.free)(ptr) };
    }

    /// Copies `data` to device address `dst`.
    ///
    /// # Safety
    /// `dst .. dst + data.len()` lies inside a live allocation.
    pub unsafe fn copy_to_device(&self, dst: DevicePtr, data: &[u8]) -> Result<()> {
        // SAFETY: `data` is valid for its length; the caller vouches for `dst`.
        let code = unsafe { (self.entries.copy_to_device)(dst, data.as_ptr().cast(), data.len()) };
        self.check(self.table.copy_to_device, code)
    }

    /// Copies from device address `src` into `out`, after earlier work.
    ///
    /// # Safety
    /// `src .. src + out.len()` lies inside a live allocation.
    pub unsafe fn copy_to_host(&self, src: DevicePtr, out: &mut [u8]) -> Result<()> {
        // SAFETY: `out` is valid for writes of its length; the caller vouches for `src`.
        let code = unsafe { (self.entries.copy_to_host)(out.as_mut_ptr().cast(), src, out.len()) };
        self.check(self.table.copy_to_host, code)
    }

    /// Loads a compiled image (PTX ending in NUL, or a code object).
    pub fn load_module(&self, image: &[u8]) -> Result<usize> {
        let mut module: *mut c_void = std::ptr::null_mut();
        // SAFETY: `image` outlives the call; the driver copies what it keeps.
        self.check(self.table.module_load, unsafe {
            (self.entries.module_load)(&mut module, image.as_ptr().cast())
        })?;
        Ok(module as usize)
    }

    /// The entry point `name` of a loaded module.
    pub fn function(&self, module: usize, name: &str) -> Result<usize> {
        let cname = CString::new(name)
            .map_err(|_| HalError::invalid(self.table.backend, "a NUL in a kernel name"))?;
        let mut f: *mut c_void = std::ptr::null_mut();
        // SAFETY: `module` came from `load_module`; `cname` is NUL-terminated.
        self.check(&format!("{}({name})", self.table.module_function), unsafe {
            (self.entries.module_function)(&mut f, module as *mut c_void, cname.as_ptr())
        })?;
        Ok(f as usize)
    }

    /// Launches `function` on the default stream.
    ///
    /// # Safety
    /// `function` came from [`ModuleApi::function`] and `params` point to
    /// live argument bytes laid out as the kernel declares them.
    pub unsafe fn launch(
        &self,
        function: usize,
        grid: [u32; 3],
        block: u32,
        params: &mut [*mut c_void],
    ) -> Result<()> {
        // SAFETY: the caller's contract; no shared memory, the default stream, no extras.
        let code = unsafe {
            (self.entries.launch)(
                function as *mut c_void,
                grid[0],
                grid[1],
                grid[2],
                block,
                1,
                1,
                0,
                std::ptr::null_mut(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        self.check(self.table.launch, code)
    }

    /// Waits for all work on the current device.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: no arguments.
        self.check(self.table.synchronize, unsafe {
            (self.entries.synchronize)()
        })
    }
}

/// Finds symbols in one library, naming the backend when one is missing.
pub(super) struct Binder<'a> {
    /// The loaded library.
    pub library: &'a Library,
    /// The backend name for errors.
    pub backend: &'a str,
}

impl Binder<'_> {
    /// `name`, declared as `T`: every caller writes `T` as the symbol's C
    /// signature (the function-pointer types of this module and of
    /// `gemm_library.rs`).
    pub fn get<T: Copy>(&self, name: &str) -> Result<T> {
        // SAFETY: `T` is the symbol's C signature, as the callers declare it.
        unsafe { self.library.get::<T>(name.as_bytes()) }
            .map(|s| *s)
            .map_err(|e| HalError::backend(self.backend, format!("finding {name}"), e.to_string()))
    }
}
