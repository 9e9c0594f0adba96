//! HIP device discovery and what each device is.

use glmhal_gpu_kernels::blas::gemm_feature;
use glmhal_hal::{DeviceInfo, Result};

use crate::loader::{attribute, Hip};

/// Facts about device `i`.
pub fn describe(hip: &Hip, i: usize) -> Result<DeviceInfo> {
    let name = hip.name(i)?;
    let vendor = if name.to_ascii_lowercase().contains("hygon") || hip.path.contains("dtk") {
        "Hygon"
    } else {
        "AMD"
    };
    let arch = hip.arch(i).unwrap_or_else(|| "unknown gfx".into());
    let mut info = DeviceInfo::new("hip", i, vendor, &name, &arch);
    info.memory_total = hip.total_memory(i).ok();
    info.compute_units = hip
        .attribute(i, attribute::MULTIPROCESSOR_COUNT)
        .ok()
        .map(|v| v as u32);
    let (runtime, driver) = hip.versions();
    info.runtime_version = Some(format!("HIP {runtime} ({})", hip.path));
    info.driver_version = Some(driver.to_string());
    if let Ok(w) = hip.attribute(i, attribute::WARP_SIZE) {
        info.features.push(format!("wavefront={w}"));
    }
    info.features.push(gemm_feature(
        crate::blas::locate().as_deref().map_err(|e| e.as_str()),
    ));
    Ok(info)
}
