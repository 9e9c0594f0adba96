//! NVRTC, loaded at run time, compiles the tree to PTX for a compute
//! capability; `ptxas` (when found) assembles it for the real architecture
//! and reports register use per entry point.

use std::path::{Path, PathBuf};
use std::process::Command;

use glmhal_hal::{GpuOptions, HalError, Ptxas, Result};

use crate::rtc::{candidates, Flavor, Rtc};
use crate::vendor_env::{cuda_roots, ld_library_path, path_dirs};
use crate::{FileResult, KernelFile, KernelInfo, Target};

const FLAVOR: Flavor = Flavor {
    prefix: "nvrtc",
    code: "PTX",
};

/// Loads NVRTC from `options.nvrtc`, `LD_LIBRARY_PATH`, `$CUDA_PATH/lib64`
/// or the system directories.
pub fn load(options: &GpuOptions) -> Result<Rtc> {
    let mut files: Vec<PathBuf> = options.nvrtc.iter().cloned().collect();
    let mut dirs = ld_library_path();
    dirs.extend(cuda_roots().iter().map(|root| root.join("lib64")));
    dirs.extend(["/usr/lib/x86_64-linux-gnu", "/usr/lib64"].map(PathBuf::from));
    files.extend(candidates(
        &dirs,
        &["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"],
    ));
    Rtc::load(
        FLAVOR,
        files,
        "set GLMHAL_NVRTC to the library, or LD_LIBRARY_PATH to its directory; pip's nvidia-cuda-nvrtc-cu12 wheel has one",
    )
}

/// Compiles `file` to PTX for `target`, then (with `ptxas`) to a cubin.
pub(crate) fn compile(
    rtc: &Rtc,
    target: &Target,
    file: KernelFile,
    out: Option<&Path>,
    ptxas: Option<&Path>,
) -> Result<FileResult> {
    let Target::Cuda { sm } = target else {
        return Err(HalError::invalid(
            "nvrtc",
            format!("{target} is not a CUDA target"),
        ));
    };
    let mut options = target.rtc_options();
    options.extend(crate::defines(target));
    let compiled = rtc.compile(file, &options)?;
    let mut result = rtc.file_result(file, &compiled);
    if !compiled.ok {
        return Ok(result);
    }
    let ptx = String::from_utf8_lossy(&compiled.code)
        .trim_end_matches('\0')
        .to_string();
    result.kernels = ptx
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix(".visible .entry ")
                .or_else(|| l.trim().strip_prefix(".entry "))
        })
        .map(|l| KernelInfo {
            name: l.split('(').next().unwrap_or(l).trim().to_string(),
            ..Default::default()
        })
        .collect();
    let stem = format!("{}.sm_{sm}", file.name.trim_end_matches(".cu"));
    let work = match out {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!("glmhal-nvrtc-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)
        .map_err(|e| HalError::io(format!("creating {}", work.display()), e))?;
    let ptx_path = work.join(format!("{stem}.ptx"));
    std::fs::write(&ptx_path, &ptx)
        .map_err(|e| HalError::io(format!("writing {}", ptx_path.display()), e))?;
    result.output = Some(ptx_path.display().to_string());
    if let Some(ptxas) = ptxas {
        let cubin = work.join(format!("{stem}.cubin"));
        let run = Command::new(ptxas)
            .arg(format!("-arch=sm_{sm}"))
            .arg("-v")
            .arg(&ptx_path)
            .arg("-o")
            .arg(&cubin)
            .output()
            .map_err(|e| HalError::io(format!("running {}", ptxas.display()), e))?;
        let text = String::from_utf8_lossy(&run.stderr).into_owned();
        result.compiler += " + ptxas";
        apply_ptxas_report(&text, &mut result.kernels);
        if !run.status.success() {
            result.ok = false;
            result.log += &text;
        } else if out.is_some() {
            result.output = Some(cubin.display().to_string());
        }
    }
    if out.is_none() {
        let _ = std::fs::remove_dir_all(&work);
        result.output = None;
    }
    Ok(result)
}

/// Fills register counts and spills from `ptxas -v` output.
fn apply_ptxas_report(text: &str, kernels: &mut [KernelInfo]) {
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            current = rest.split('\'').next().map(str::to_string);
        } else if let (Some(name), Some(rest)) = (&current, line.split("Used ").nth(1)) {
            let regs = rest.split_whitespace().next().and_then(|n| n.parse().ok());
            if let Some(k) = kernels.iter_mut().find(|k| &k.name == name) {
                k.registers = regs;
            }
        } else if let (Some(name), Some(before)) = (
            &current,
            line.split(" bytes spill stores")
                .next()
                .filter(|_| line.contains("spill stores")),
        ) {
            let spill = before
                .rsplit(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .and_then(|n| n.parse().ok());
            if let Some(k) = kernels.iter_mut().find(|k| &k.name == name) {
                k.spill_bytes = spill;
            }
        }
    }
}

/// `ptxas` as `choice` says: a given file, none, or found on `PATH`, in the
/// CUDA toolkit, or in the pip wheels beside NVRTC (`nvidia/cuda_nvcc/bin`).
pub(crate) fn find_ptxas(choice: &Ptxas, nvrtc_dir: Option<&Path>) -> Option<PathBuf> {
    match choice {
        Ptxas::At(path) => return Some(path.clone()),
        Ptxas::Skip => return None,
        Ptxas::Search => {}
    }
    let mut dirs = path_dirs();
    dirs.extend(cuda_roots().iter().map(|root| root.join("bin")));
    if let Some(lib) = nvrtc_dir {
        // .../nvidia/cuda_nvrtc/lib -> .../nvidia/cuda_nvcc/bin
        if let Some(nvidia) = lib.parent().and_then(Path::parent) {
            dirs.push(nvidia.join("cuda_nvcc").join("bin"));
        }
    }
    dirs.into_iter()
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_registers_from_ptxas() {
        let mut k = vec![KernelInfo {
            name: "rope_f32_f32".into(),
            ..Default::default()
        }];
        apply_ptxas_report(
            "ptxas info    : Compiling entry function 'rope_f32_f32' for 'sm_80'\nptxas info    : Function properties for rope_f32_f32\n    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\nptxas info    : Used 30 registers, 400 bytes cmem[0]\n",
            &mut k,
        );
        assert_eq!((k[0].registers, k[0].spill_bytes), (Some(30), Some(4)));
    }
}
