//! CUDA device discovery and what each device is.

use glmhal_gpu_kernels::blas::gemm_feature;
use glmhal_hal::{DeviceInfo, Result};

use crate::loader::{attribute, Cuda};

/// Facts about device `i`, with the peak memory bandwidth its clocks imply.
pub fn describe(cuda: &Cuda, i: usize) -> Result<DeviceInfo> {
    let name = cuda.name(i)?;
    let major = cuda.attribute(i, attribute::CC_MAJOR)?;
    let minor = cuda.attribute(i, attribute::CC_MINOR)?;
    let mut info = DeviceInfo::new("cuda", i, "NVIDIA", &name, &format!("sm_{major}{minor}"));
    info.memory_total = cuda.total_memory(i).ok();
    info.compute_units = cuda
        .attribute(i, attribute::MULTIPROCESSOR_COUNT)
        .ok()
        .map(|v| v as u32);
    let v = cuda.driver_version();
    info.driver_version = Some(format!("CUDA driver API {}.{}", v / 1000, v % 1000 / 10));
    if let (Ok(khz), Ok(bits)) = (
        cuda.attribute(i, attribute::MEMORY_CLOCK_KHZ),
        cuda.attribute(i, attribute::MEMORY_BUS_BITS),
    ) {
        // Double data rate: two transfers per clock.
        info.peak_bandwidth = Some(2.0 * khz as f64 * 1e3 * bits as f64 / 8.0);
    }
    if let (Some(sms), Ok(khz)) = (info.compute_units, cuda.attribute(i, attribute::CLOCK_KHZ)) {
        // FP32 lanes per SM: 64 on Volta, Turing and A100 (sm_80), 128 on later parts.
        let lanes = if major * 10 + minor <= 80 {
            64.0
        } else {
            128.0
        };
        info.peak_flops.f32 = Some(2.0 * lanes * sms as f64 * khz as f64 * 1e3);
    }
    info.features.push(gemm_feature(
        crate::blas::locate().as_deref().map_err(|e| e.as_str()),
    ));
    Ok(info)
}
