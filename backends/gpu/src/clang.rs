//! clang's HIP mode, for machines with the HIP device libraries but no
//! hiprtc: compiles each file to a code object and reports VGPRs and spills
//! per kernel from clang's resource-usage remarks.

use std::path::{Path, PathBuf};
use std::process::Command;

use glmhal_hal::{GpuOptions, HalError, Result};

use crate::vendor_env::{path_dirs, rocm_roots};

use crate::{FileResult, KernelFile, KernelInfo, Target, HEADERS};

/// A clang that can compile HIP, with the ROCm root and device libraries it needs.
pub(crate) struct Clang {
    clang: PathBuf,
    rocm: PathBuf,
    device_libs: PathBuf,
}

fn first_existing(paths: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    paths.into_iter().find(|p| p.exists())
}

impl Clang {
    /// Finds clang (`options.hip_clang`, ROCm's or DTK's llvm, `clang-15`,
    /// `clang` on `PATH`) and the device libraries (`options.hip_device_libs`,
    /// ROCm's `amdgcn/bitcode`, Debian's).
    pub fn find(options: &GpuOptions) -> Result<Self> {
        let mut roots = rocm_roots();
        roots.push(PathBuf::from("/usr"));
        let path_dirs = path_dirs();
        let clang = first_existing(
            options
                .hip_clang
                .iter()
                .cloned()
                .chain(roots.iter().map(|r| r.join("llvm/bin/clang")))
                .chain(path_dirs.iter().flat_map(|d| [d.join("clang-15"), d.join("clang")])),
        )
        .ok_or_else(|| HalError::Unavailable {
            backend: "hip compiler".into(),
            reason: "neither hiprtc nor a HIP-capable clang was found (install ROCm, or Debian's hipcc, or set GLMHAL_HIP_CLANG)".into(),
        })?;
        let device_libs = first_existing(
            options
                .hip_device_libs
                .iter()
                .cloned()
                .chain(roots.iter().map(|r| r.join("amdgcn/bitcode")))
                .chain([PathBuf::from("/usr/lib/x86_64-linux-gnu/amdgcn/bitcode")]),
        )
        .ok_or_else(|| HalError::Unavailable {
            backend: "hip compiler".into(),
            reason: "the HIP device libraries (amdgcn/bitcode) were not found (Debian: rocm-device-libs; or set GLMHAL_HIP_DEVICE_LIBS)".into(),
        })?;
        let rocm = first_existing(roots.iter().filter(|r| r.join("include/hip/hip_runtime.h").exists()).cloned())
            .ok_or_else(|| HalError::Unavailable {
                backend: "hip compiler".into(),
                reason: "hip/hip_runtime.h was not found under $ROCM_PATH, /opt/rocm, /opt/dtk or /usr (Debian: libamdhip64-dev)".into(),
            })?;
        Ok(Clang {
            clang,
            rocm,
            device_libs,
        })
    }

    /// Compiles `file` for `target`.
    pub fn compile(
        &self,
        target: &Target,
        file: KernelFile,
        out: Option<&Path>,
    ) -> Result<FileResult> {
        let Target::Hip { arch } = target else {
            return Err(HalError::invalid(
                "clang",
                format!("{target} is not a HIP target"),
            ));
        };
        let work =
            std::env::temp_dir().join(format!("glmhal-hip-{}-{}", std::process::id(), file.name));
        std::fs::create_dir_all(&work)
            .map_err(|e| HalError::io(format!("creating {}", work.display()), e))?;
        for f in HEADERS.iter().chain([&file]) {
            std::fs::write(work.join(f.name), f.source)
                .map_err(|e| HalError::io(format!("writing {}", f.name), e))?;
        }
        let object = match out {
            Some(dir) => dir.join(format!("{}.{arch}.o", file.name.trim_end_matches(".cu"))),
            None => work.join("out.o"),
        };
        let run = Command::new(&self.clang)
            .args([
                "-x",
                "hip",
                "--cuda-device-only",
                "--no-gpu-bundle-output",
                "-O3",
                "-c",
            ])
            .arg(format!("--rocm-path={}", self.rocm.display()))
            .arg(format!(
                "--hip-device-lib-path={}",
                self.device_libs.display()
            ))
            .arg(format!("--offload-arch={arch}"))
            .args(crate::defines(target))
            .arg("-Rpass-analysis=kernel-resource-usage")
            .arg(work.join(file.name))
            .arg("-o")
            .arg(&object)
            .output()
            .map_err(|e| HalError::io(format!("running {}", self.clang.display()), e))?;
        let text = String::from_utf8_lossy(&run.stderr).into_owned();
        let _ = std::fs::remove_dir_all(&work);
        let name = self
            .clang
            .file_name()
            .map_or("clang".into(), |n| n.to_string_lossy().into_owned());
        let log: String = text
            .lines()
            .filter(|l| {
                !l.contains("remark:") && !l.trim().is_empty() && !l.trim_start().starts_with('^')
            })
            .collect::<Vec<_>>()
            .join("\n");
        Ok(FileResult {
            file: file.name.into(),
            ok: run.status.success(),
            compiler: format!("{name} (HIP mode)"),
            kernels: resource_usage(&text),
            log,
            seconds: 0.0,
            output: (run.status.success() && out.is_some()).then(|| object.display().to_string()),
        })
    }
}

/// Kernels and their VGPRs and spills from `-Rpass-analysis=kernel-resource-usage`.
fn resource_usage(text: &str) -> Vec<KernelInfo> {
    let mut kernels: Vec<KernelInfo> = Vec::new();
    let value = |line: &str, key: &str| -> Option<u32> {
        line.split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    for line in text.lines().filter(|l| l.contains("remark:")) {
        if let Some(name) = line.split("Function Name: ").nth(1) {
            let name = name.split_whitespace().next().unwrap_or(name);
            kernels.push(KernelInfo {
                name: name.to_string(),
                ..Default::default()
            });
        } else if let Some(k) = kernels.last_mut() {
            if line.contains(" VGPRs: ") {
                k.registers = value(line, " VGPRs: ");
            } else if line.contains(" VGPRs Spill: ") {
                k.spill_bytes = value(line, " VGPRs Spill: ").map(|v| v * 4);
            }
        }
    }
    kernels
}
