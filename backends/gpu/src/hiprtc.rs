//! hiprtc, from the HIP runtime's own directories (ROCm's `libhiprtc`, or
//! `libamdhip64` on ROCm 5, which carries it; Hygon DTK under `/opt/dtk`),
//! compiles the tree to a code object for a `gcnArchName`.

use std::path::{Path, PathBuf};

use glmhal_hal::{HalError, Result};

use crate::rtc::{candidates, Flavor, Rtc};
use crate::vendor_env::{ld_library_path, rocm_roots};
use crate::{FileResult, KernelFile, KernelInfo, Target};

const FLAVOR: Flavor = Flavor {
    prefix: "hiprtc",
    code: "Code",
};

/// Where ROCm and Hygon DTK keep their libraries.
pub(crate) fn rocm_lib_dirs() -> Vec<PathBuf> {
    let mut dirs = ld_library_path();
    dirs.extend(rocm_roots().iter().map(|root| root.join("lib")));
    dirs.extend(
        [
            "/opt/dtk/hip/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
        ]
        .map(PathBuf::from),
    );
    dirs
}

/// Loads hiprtc.
pub fn load() -> Result<Rtc> {
    let names = [
        "libhiprtc.so",
        "libhiprtc.so.6",
        "libhiprtc.so.5",
        "libamdhip64.so",
        "libamdhip64.so.6",
        "libamdhip64.so.5",
        "libgalaxyhip.so.5",
    ];
    Rtc::load(
        FLAVOR,
        candidates(&rocm_lib_dirs(), &names),
        "install ROCm or Hygon DTK, or set ROCM_PATH",
    )
}

/// Compiles `file` for `target` with hiprtc.
pub(crate) fn compile(
    rtc: &Rtc,
    target: &Target,
    file: KernelFile,
    out: Option<&Path>,
) -> Result<FileResult> {
    let Target::Hip { arch } = target else {
        return Err(HalError::invalid(
            "hiprtc",
            format!("{target} is not a HIP target"),
        ));
    };
    let mut options = target.rtc_options();
    options.extend(crate::defines(target));
    let compiled = rtc.compile(file, &options)?;
    let mut result = rtc.file_result(file, &compiled);
    result.kernels = kernel_names(&compiled.code)
        .into_iter()
        .map(|name| KernelInfo {
            name,
            ..Default::default()
        })
        .collect();
    if let (true, Some(dir)) = (compiled.ok, out) {
        let path = dir.join(format!(
            "{}.{arch}.hsaco",
            file.name.trim_end_matches(".cu")
        ));
        std::fs::write(&path, &compiled.code)
            .map_err(|e| HalError::io(format!("writing {}", path.display()), e))?;
        result.output = Some(path.display().to_string());
    }
    Ok(result)
}

/// Kernel names in an AMDGPU code object: every kernel has a `<name>.kd`
/// descriptor symbol in the string table.
fn kernel_names(code: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = code
        .split(|b| *b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter_map(|s| s.strip_suffix(".kd"))
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_kernel_descriptors() {
        let code = b"\x7fELF\0junk\0rope_f32_f32.kd\0rope_f32_f32\0argmax_f16.kd\0";
        assert_eq!(super::kernel_names(code), ["argmax_f16", "rope_f32_f32"]);
    }
}
