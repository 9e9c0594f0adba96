//! # glmhal-gpu-kernels
//!
//! One kernel source tree for the CUDA and HIP backends: CUDA C++ in
//! `kernels/`, with `compat.h` mapping the few differences (headers, warp
//! shuffles, dp4a) and `GLMHAL_WARP` (32 on NVIDIA, 64 on AMD and Hygon
//! wavefronts) defined by the compiler driver, never written as a literal.
//! Every op of the catalogue has kernels here, instantiated per dtype
//! combination as `extern "C"` entry points (`unary_f16_f32`, ...).
//!
//! The drivers compile the tree for a [`Target`] without the hardware:
//! NVRTC (loaded at run time) to PTX, then `ptxas` for register use; for HIP,
//! hiprtc where the HIP runtime carries it, otherwise clang's HIP mode.

pub mod blas;
mod clang;
pub mod hiprtc;
pub mod nvrtc;
pub mod plan;
pub mod rtc;
pub mod runtime;
mod target;

pub use target::Target;

use std::path::Path;
use std::time::Instant;

use glmhal_hal::{HalError, Result};
use serde::Serialize;

/// A source file of the tree.
#[derive(Clone, Copy, Debug)]
pub struct KernelFile {
    /// File name (`attention.cu`).
    pub name: &'static str,
    /// Its text.
    pub source: &'static str,
}

/// Headers every file includes, by the name it includes them with.
pub const HEADERS: [KernelFile; 2] = [
    KernelFile {
        name: "compat.h",
        source: include_str!("../kernels/compat.h"),
    },
    KernelFile {
        name: "dtypes.h",
        source: include_str!("../kernels/dtypes.h"),
    },
];

/// The kernel files, one per op family.
pub const FILES: [KernelFile; 9] = [
    KernelFile {
        name: "elementwise.cu",
        source: include_str!("../kernels/elementwise.cu"),
    },
    KernelFile {
        name: "norm.cu",
        source: include_str!("../kernels/norm.cu"),
    },
    KernelFile {
        name: "reduce.cu",
        source: include_str!("../kernels/reduce.cu"),
    },
    KernelFile {
        name: "matmul.cu",
        source: include_str!("../kernels/matmul.cu"),
    },
    KernelFile {
        name: "embedding.cu",
        source: include_str!("../kernels/embedding.cu"),
    },
    KernelFile {
        name: "rope.cu",
        source: include_str!("../kernels/rope.cu"),
    },
    KernelFile {
        name: "kv_cache.cu",
        source: include_str!("../kernels/kv_cache.cu"),
    },
    KernelFile {
        name: "attention.cu",
        source: include_str!("../kernels/attention.cu"),
    },
    KernelFile {
        name: "convert.cu",
        source: include_str!("../kernels/convert.cu"),
    },
];

/// What the compiler said about one entry point.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KernelInfo {
    /// Entry point name.
    pub name: String,
    /// Registers per thread (VGPRs on AMD), where the compiler reports them.
    pub registers: Option<u32>,
    /// Bytes spilled per thread, where reported.
    pub spill_bytes: Option<u32>,
}

/// One file compiled for one target.
#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    /// The file.
    pub file: String,
    /// Whether it compiled.
    pub ok: bool,
    /// The compiler that ran (`nvrtc 12.9 + ptxas`, `clang-15`, ...).
    pub compiler: String,
    /// Entry points it produced, with resource use.
    pub kernels: Vec<KernelInfo>,
    /// The compiler's log (errors and warnings).
    pub log: String,
    /// Seconds it took.
    pub seconds: f64,
    /// Where the output was written, if asked.
    pub output: Option<String>,
}

/// How to compile for HIP targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HipCompiler {
    /// hiprtc if the HIP runtime can be loaded, else clang.
    Auto,
    /// hiprtc only.
    Hiprtc,
    /// clang's HIP mode only.
    Clang,
}

/// Compiles every file for `target`, writing PTX/cubin or code objects to
/// `out` when given. A file that does not compile is a result with `ok:
/// false` and the log; a compiler that cannot be found is an error.
pub fn compile_all(
    target: &Target,
    out: Option<&Path>,
    hip: HipCompiler,
) -> Result<Vec<FileResult>> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .map_err(|e| HalError::io(format!("creating {}", dir.display()), e))?;
    }
    let mut results = Vec::new();
    match target {
        Target::Cuda { .. } => {
            let rtc = nvrtc::load()?;
            let ptxas = nvrtc::find_ptxas(rtc.path.parent());
            for f in FILES {
                let start = Instant::now();
                let mut r = nvrtc::compile(&rtc, target, f, out, ptxas.as_deref())?;
                r.seconds = start.elapsed().as_secs_f64();
                results.push(r);
            }
        }
        Target::Hip { .. } => {
            let rtc = match hip {
                HipCompiler::Clang => None,
                HipCompiler::Hiprtc => Some(hiprtc::load()?),
                HipCompiler::Auto => hiprtc::load().ok(),
            };
            let clang = match rtc {
                Some(_) => None,
                None => Some(clang::Clang::find()?),
            };
            for f in FILES {
                let start = Instant::now();
                let mut r = match (&rtc, &clang) {
                    (Some(rtc), _) => hiprtc::compile(rtc, target, f, out)?,
                    (None, Some(c)) => c.compile(target, f, out)?,
                    (None, None) => {
                        return Err(HalError::invalid("kernels", "no HIP compiler was chosen"))
                    }
                };
                r.seconds = start.elapsed().as_secs_f64();
                results.push(r);
            }
        }
    }
    Ok(results)
}

/// The preprocessor definitions every compile passes.
pub(crate) fn defines(target: &Target) -> Vec<String> {
    vec![format!("-DGLMHAL_WARP={}", target.warp_size())]
}
