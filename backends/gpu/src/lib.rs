//! # glmhal-gpu
//!
//! The one GPU backend of glmhal. CUDA, HIP (AMD and Hygon) and OpenCL run
//! the same code: [`backend::GpuBackend`] is the `Backend` over a small
//! [`driver::Driver`] trait (memory, copies, modules, launches on one
//! in-order stream, an optional vendor BLAS); [`plan`] maps every op of the
//! catalogue onto an entry point of the one kernel source tree in
//! `kernels/`; [`blas`] decides which products go to the vendor BLAS; the
//! compilers (NVRTC with `ptxas`, hiprtc, clang's HIP mode) build the tree
//! for a [`Target`] with or without the hardware. The vendor crates hold
//! only tables: CUDA and HIP share one driver written once over their common
//! module-launch API ([`module_api`]), and OpenCL implements [`driver::Driver`]
//! over its queue.
//!
//! ## The kernel tree
//!
//! One file per op family (`kernels/*.cu`), written in the common subset of
//! CUDA C++ and OpenCL C 1.2: no templates or references; each op is an
//! inline function taking its dtypes as constant arguments (the compilers
//! fold them), instantiated per dtype combination by `dtypes.h`'s lists as
//! entry points (`unary_f16_f32`, ...); local memory is declared by the
//! entry point and passed down. `compat.h` maps the differences (`KERNEL`,
//! `DEVICE`, `GLOBAL`/`LOCAL` address spaces, thread and block ids,
//! barriers, atomics, float function names; block and lane reductions
//! through warp shuffles on CUDA/HIP and through local memory on OpenCL),
//! defines the `View` every kernel indexes through and exact f16/bf16
//! conversions, and takes the warp width as `GLMHAL_WARP` (32 on NVIDIA, 64
//! on AMD and Hygon wavefronts, 32 on OpenCL) from the compiler driver,
//! never as a literal. [`flatten`] inlines the headers for drivers that take
//! one source string.
//!
//! ## The Rust side
//!
//! - `driver.rs`: the [`driver::Driver`] trait and kernel-argument packing.
//! - `backend.rs`: buffers from a size pool, compiling each kernel file once
//!   per device at first use, launching planned kernels or the vendor GEMM,
//!   and the status words through which kernels report ids or positions
//!   outside a table or cache and argmax rows holding a NaN or an infinity
//!   (codes and errors in `hal/src/kernel_status.rs`, shared with wgpu).
//! - `plan.rs`: each op's entry point, launch shape and arguments, the same
//!   on every vendor (a test checks every planned name exists in the
//!   compiled tree).
//! - `blas.rs`: which products go to the vendor BLAS as they are
//!   (f32/f16/bf16 `mat_mul` and `batched_mat_mul` whose views BLAS can
//!   describe), translated once for every vendor into a column-major
//!   strided-batched GEMM (`Cᵀ = Bᵀ·Aᵀ`, transpose flags from unit strides, a
//!   bias cast into the output first and accumulated with beta = 1); a test
//!   runs that call with the BLAS definition on every accepted conformance
//!   case. `staged_gemm.rs`: prefill products with f32 activations and
//!   f16/bf16 or Q8_0/Q4_0 weights, staged through a workspace (activations
//!   cast, quantized weights dequantized to f16 panels) so the GEMM runs on
//!   tensor cores, with the precision that implies declared.
//! - `packed.rs`: the layout `prepare_weight` gives Q8_0/Q4_0 weights (each
//!   row's quants, then its scales, 16-byte aligned), which the decode
//!   kernels read 16 bytes per lane; `kernels/vectors.h` holds the 16-byte
//!   loads and hardware f16 widening.
//! - Decode: `matvec_*` multiplies up to 8 rows in one pass over the
//!   weights; attention holds every query head of a KV head in one block
//!   and, for decode, splits the keys into chunks across blocks
//!   (`attention_split_*`, then `attention_combine_*`: flash-decoding). Every launch states the bytes it
//!   reads ([`plan::Launch::reads`]); the backend counts launches, copies
//!   and host waits (`Backend::counters`), which `glmhal bench` reports per
//!   decode step.
//! - `fusion.rs`: in a step, GLM-4's post-block norm with the residual add
//!   and the next norm, the gate/up product with SwiGLU, and rope with the
//!   cache writes each run as one launch that writes every byte the separate
//!   calls would (a test compares them bit for bit); `plan_cache.rs` keeps
//!   each op's resolved launches, so a repeated step plans nothing again.
//! - `module_api/`: the CUDA driver API and HIP's module API bound from a
//!   vendor's table of names (`cuLaunchKernel` or `hipModuleLaunchKernel`),
//!   the [`module_api::ModuleDriver`] over it, cuBLAS/rocBLAS as one
//!   [`module_api::GemmLibrary`], and probing and opening devices.
//! - `rtc.rs` loads NVRTC or hiprtc (same API shape), `nvrtc.rs` adds
//!   `ptxas` for register use, `hiprtc.rs` and `clang.rs` build code
//!   objects, `target.rs` parses `cuda:sm_90` / `hip:gfx90a`.

pub mod backend;
pub mod blas;
mod clang;
pub mod driver;
pub mod fusion;
pub mod hiprtc;
pub mod module_api;
pub mod nvrtc;
pub mod packed;
pub mod plan;
pub mod plan_cache;
pub mod rtc;
pub mod staged_gemm;
mod target;
pub mod vendor_env;

pub use target::Target;

/// A device allocation: an address (CUDA, HIP) or a handle the runtime
/// resolves (an OpenCL `cl_mem`). Only the runtime that made it reads it.
pub type DevicePtr = u64;

use std::path::Path;
use std::time::Instant;

use glmhal_hal::{GpuOptions, HalError, Result};
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
pub const HEADERS: [KernelFile; 3] = [
    KernelFile {
        name: "compat.h",
        source: include_str!("../kernels/compat.h"),
    },
    KernelFile {
        name: "dtypes.h",
        source: include_str!("../kernels/dtypes.h"),
    },
    KernelFile {
        name: "vectors.h",
        source: include_str!("../kernels/vectors.h"),
    },
];

/// The kernel files, one per op family.
pub const FILES: [KernelFile; 10] = [
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
        name: "experts.cu",
        source: include_str!("../kernels/experts.cu"),
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

/// The first line of a [`flatten`]ed file, before its name.
const FLATTENED_MARK: &str = "// glmhal kernel file: ";

/// `file` with the tree's headers inlined where it includes them (each
/// once, `#pragma once` dropped) and `#line` directives so compiler
/// messages name the original file and line: one self-contained text, for
/// drivers that take a single source string and no include files (OpenCL).
pub fn flatten(file: KernelFile) -> String {
    fn inline(text: &str, name: &str, seen: &mut Vec<&'static str>, out: &mut String) {
        out.push_str(&format!("#line 1 \"{name}\"\n"));
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed == "#pragma once" {
                out.push('\n');
                continue;
            }
            let header = trimmed
                .strip_prefix("#include \"")
                .and_then(|rest| rest.strip_suffix('"'))
                .and_then(|included| HEADERS.iter().find(|h| h.name == included));
            match header {
                Some(h) => {
                    if !seen.contains(&h.name) {
                        seen.push(h.name);
                        inline(h.source, h.name, seen, out);
                    }
                    out.push_str(&format!("#line {} \"{name}\"\n", i + 2));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    let mut out = format!("{FLATTENED_MARK}{}\n", file.name);
    inline(file.source, file.name, &mut Vec::new(), &mut out);
    out
}

/// The file name a [`flatten`]ed text was made from.
pub fn flattened_name(text: &str) -> Option<&str> {
    text.lines().next()?.strip_prefix(FLATTENED_MARK)
}

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
    options: &GpuOptions,
) -> Result<Vec<FileResult>> {
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .map_err(|e| HalError::io(format!("creating {}", dir.display()), e))?;
    }
    let mut results = Vec::new();
    match target {
        Target::Cuda { .. } => {
            let rtc = nvrtc::load(options)?;
            let ptxas = nvrtc::find_ptxas(&options.ptxas, rtc.path.parent());
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
                None => Some(clang::Clang::find(options)?),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattening_inlines_each_header_once_and_keeps_line_numbers() {
        let text = flatten(FILES[3]);
        assert_eq!(flattened_name(&text), Some("matmul.cu"));
        assert!(!text.contains("#include \"") && !text.contains("#pragma once"));
        assert_eq!(text.matches("#define DT_F32 0").count(), 1);
        assert_eq!(text.matches("typedef struct {\n    u64 offset;").count(), 1);
        // The line after the last include continues at its own number.
        let lines: Vec<&str> = FILES[3].source.lines().collect();
        let include = lines
            .iter()
            .rposition(|l| l.starts_with("#include"))
            .unwrap_or(0);
        let directive = format!("#line {} \"matmul.cu\"", include + 2);
        let after: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != directive)
            .skip(1)
            .collect();
        assert_eq!(after.first(), lines.get(include + 1), "{text}");
        assert_eq!(after.get(5), lines.get(include + 6), "{text}");
    }
}
