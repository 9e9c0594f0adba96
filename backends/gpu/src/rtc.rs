//! NVRTC and hiprtc have the same shape (create a program with in-memory
//! headers, compile with options, read the log and the code), so one loader
//! serves both; only the symbol prefix and the code accessor differ.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;

use glmhal_hal::{HalError, Result};
use libloading::Library;

use crate::{FileResult, KernelFile, HEADERS};

type Program = *mut c_void;
type CreateFn = unsafe extern "C" fn(
    *mut Program,
    *const c_char,
    *const c_char,
    c_int,
    *const *const c_char,
    *const *const c_char,
) -> c_int;
type CompileFn = unsafe extern "C" fn(Program, c_int, *const *const c_char) -> c_int;
type SizeFn = unsafe extern "C" fn(Program, *mut usize) -> c_int;
type GetFn = unsafe extern "C" fn(Program, *mut c_char) -> c_int;
type DestroyFn = unsafe extern "C" fn(*mut Program) -> c_int;
type VersionFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
type ErrorFn = unsafe extern "C" fn(c_int) -> *const c_char;

/// Which runtime compiler: its symbol prefix and how its output is fetched.
#[derive(Clone, Copy, Debug)]
pub struct Flavor {
    /// `nvrtc` or `hiprtc`.
    pub prefix: &'static str,
    /// The code accessor's suffix: `PTX` (NVRTC) or `Code` (hiprtc).
    pub code: &'static str,
}

/// A loaded runtime compiler.
pub struct Rtc {
    _lib: Library,
    /// The library file.
    pub path: PathBuf,
    /// (major, minor).
    pub version: (c_int, c_int),
    flavor: Flavor,
    create: CreateFn,
    compile: CompileFn,
    code_size: SizeFn,
    code: GetFn,
    log_size: SizeFn,
    log: GetFn,
    destroy: DestroyFn,
    error: ErrorFn,
}

/// One compile: whether it succeeded, the log, the code.
pub struct Compiled {
    /// Whether it compiled.
    pub ok: bool,
    /// The compiler's log.
    pub log: String,
    /// PTX (NVRTC) or a code object (hiprtc).
    pub code: Vec<u8>,
}

impl Rtc {
    /// Loads the first of `candidates` that exists and has the flavor's symbols.
    pub(crate) fn load(flavor: Flavor, candidates: Vec<PathBuf>, hint: &str) -> Result<Self> {
        let mut tried = Vec::new();
        for path in candidates.into_iter().filter(|p| p.exists()) {
            // SAFETY: loading the library runs its initializers, which have no preconditions.
            match unsafe { Library::new(&path) } {
                Ok(lib) => match Self::bind(flavor, lib, path.clone()) {
                    Ok(rtc) => return Ok(rtc),
                    Err(e) => tried.push(format!("{}: {e}", path.display())),
                },
                Err(e) => tried.push(format!("{}: {e}", path.display())),
            }
        }
        Err(HalError::Unavailable {
            backend: flavor.prefix.into(),
            reason: format!(
                "{} not found ({hint}){}",
                flavor.prefix,
                if tried.is_empty() {
                    String::new()
                } else {
                    format!("; tried {}", tried.join(", "))
                }
            ),
        })
    }

    fn bind(flavor: Flavor, lib: Library, path: PathBuf) -> Result<Self> {
        fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T> {
            // SAFETY: each symbol is declared with the compiler's documented C signature.
            unsafe { lib.get::<T>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| HalError::backend("rtc", format!("finding {name}"), e.to_string()))
        }
        let p = flavor.prefix;
        let version: VersionFn = sym(&lib, &format!("{p}Version"))?;
        let (mut major, mut minor) = (0, 0);
        // SAFETY: both pointers are valid for writes.
        unsafe { version(&mut major, &mut minor) };
        Ok(Rtc {
            create: sym(&lib, &format!("{p}CreateProgram"))?,
            compile: sym(&lib, &format!("{p}CompileProgram"))?,
            code_size: sym(&lib, &format!("{p}Get{}Size", flavor.code))?,
            code: sym(&lib, &format!("{p}Get{}", flavor.code))?,
            log_size: sym(&lib, &format!("{p}GetProgramLogSize"))?,
            log: sym(&lib, &format!("{p}GetProgramLog"))?,
            destroy: sym(&lib, &format!("{p}DestroyProgram"))?,
            error: sym(&lib, &format!("{p}GetErrorString"))?,
            version: (major, minor),
            flavor,
            path,
            _lib: lib,
        })
    }

    /// `nvrtc 12.9`, `hiprtc 5.2`.
    pub fn describe(&self) -> String {
        format!(
            "{} {}.{}",
            self.flavor.prefix, self.version.0, self.version.1
        )
    }

    fn error_text(&self, code: c_int) -> String {
        // SAFETY: the compiler returns a static string for every code.
        let p = unsafe { (self.error)(code) };
        if p.is_null() {
            format!("{} error {code}", self.flavor.prefix)
        } else {
            // SAFETY: non-null, NUL-terminated, static.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }

    /// Compiles `file` (with the tree's headers in memory) with `options`.
    pub fn compile(&self, file: KernelFile, options: &[String]) -> Result<Compiled> {
        let cstr = |s: &str| {
            CString::new(s).map_err(|_| HalError::invalid("rtc", "a NUL byte in the kernel source"))
        };
        let source = cstr(file.source)?;
        let name = cstr(file.name)?;
        let headers = HEADERS
            .iter()
            .map(|h| cstr(h.source))
            .collect::<Result<Vec<_>>>()?;
        let header_names = HEADERS
            .iter()
            .map(|h| cstr(h.name))
            .collect::<Result<Vec<_>>>()?;
        let header_ptrs: Vec<*const c_char> = headers.iter().map(|h| h.as_ptr()).collect();
        let name_ptrs: Vec<*const c_char> = header_names.iter().map(|h| h.as_ptr()).collect();
        let options = options
            .iter()
            .map(|o| cstr(o))
            .collect::<Result<Vec<_>>>()?;
        let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
        let mut program: Program = std::ptr::null_mut();
        // SAFETY: every pointer refers to a live NUL-terminated string; counts match the arrays.
        let created = unsafe {
            (self.create)(
                &mut program,
                source.as_ptr(),
                name.as_ptr(),
                HEADERS.len() as c_int,
                header_ptrs.as_ptr(),
                name_ptrs.as_ptr(),
            )
        };
        if created != 0 {
            return Err(HalError::backend(
                self.flavor.prefix,
                "creating a program",
                self.error_text(created),
            ));
        }
        // SAFETY: `program` was created above; option pointers are live.
        let status =
            unsafe { (self.compile)(program, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
        let log = String::from_utf8_lossy(&self.read(program, self.log_size, self.log))
            .trim_end_matches('\0')
            .to_string();
        let code = if status == 0 {
            self.read(program, self.code_size, self.code)
        } else {
            Vec::new()
        };
        // SAFETY: destroys the program created above, once.
        unsafe { (self.destroy)(&mut program) };
        Ok(Compiled {
            ok: status == 0,
            log: if status == 0 {
                log
            } else {
                format!("{}\n{log}", self.error_text(status))
            },
            code,
        })
    }

    fn read(&self, program: Program, size: SizeFn, get: GetFn) -> Vec<u8> {
        let mut n = 0usize;
        // SAFETY: `program` is live; `n` is valid for writes.
        if unsafe { size(program, &mut n) } != 0 || n == 0 {
            return Vec::new();
        }
        let mut buf = vec![0u8; n];
        // SAFETY: `buf` holds the `n` bytes the compiler said it needs.
        if unsafe { get(program, buf.as_mut_ptr().cast()) } != 0 {
            return Vec::new();
        }
        buf
    }
}

impl Rtc {
    /// The report of one compile with this compiler, before its kernels
    /// are listed and its output written.
    pub(crate) fn file_result(&self, file: KernelFile, compiled: &Compiled) -> FileResult {
        FileResult {
            file: file.name.into(),
            ok: compiled.ok,
            compiler: self.describe(),
            kernels: Vec::new(),
            log: compiled.log.clone(),
            seconds: 0.0,
            output: None,
        }
    }
}

/// `names` in each of `dirs`, in order.
pub(crate) fn candidates(dirs: &[PathBuf], names: &[&str]) -> Vec<PathBuf> {
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .collect()
}
