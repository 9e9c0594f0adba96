//! What each CUDA device is, and how one is opened: its compute capability
//! picks the NVRTC target, its clocks give the peak figures.

use std::sync::Arc;

use glmhal_gpu::blas::gemm_feature;
use glmhal_gpu::module_api::{KernelCompiler, ModuleApi, ModuleDriver};
use glmhal_gpu::{nvrtc, Target};
use glmhal_hal::{DeviceInfo, GpuOptions, Result};

use crate::symbols::{attribute, CUBLAS};

/// The driver as messages name it.
pub fn label(api: &ModuleApi) -> String {
    format!("the NVIDIA driver ({})", api.path)
}

/// Compute capability of device `i` as one number (90 for sm_90).
fn compute_capability(api: &ModuleApi, i: usize) -> Result<u32> {
    let major = api.attribute(i, attribute::CC_MAJOR)?;
    let minor = api.attribute(i, attribute::CC_MINOR)?;
    Ok((major * 10 + minor) as u32)
}

/// Facts about device `i`, with the peak memory bandwidth its clocks imply.
pub fn describe(api: &ModuleApi, i: usize, options: &GpuOptions) -> Result<DeviceInfo> {
    let name = api.name(i)?;
    let sm = compute_capability(api, i)?;
    let mut info = DeviceInfo::new("cuda", i, "NVIDIA", &name, &format!("sm_{sm}"));
    info.memory_total = api.total_memory(i).ok();
    info.compute_units = api
        .attribute(i, attribute::MULTIPROCESSOR_COUNT)
        .ok()
        .map(|v| v as u32);
    let v = api.driver_version();
    info.driver_version = Some(format!("CUDA driver API {}.{}", v / 1000, v % 1000 / 10));
    if let (Ok(khz), Ok(bits)) = (
        api.attribute(i, attribute::MEMORY_CLOCK_KHZ),
        api.attribute(i, attribute::MEMORY_BUS_BITS),
    ) {
        // Double data rate: two transfers per clock.
        info.peak_bandwidth = Some(2.0 * khz as f64 * 1e3 * bits as f64 / 8.0);
    }
    if let (Some(sms), Ok(khz)) = (info.compute_units, api.attribute(i, attribute::CLOCK_KHZ)) {
        // FP32 lanes per SM: 64 on Volta, Turing and A100 (sm_80), 128 on later parts.
        let lanes = if sm <= 80 { 64.0 } else { 128.0 };
        info.peak_flops.f32 = Some(2.0 * lanes * sms as f64 * khz as f64 * 1e3);
        let tensor = tensor_flops_per_clock(sm).map(|f| f * sms as f64 * khz as f64 * 1e3);
        info.peak_flops.f16 = tensor;
        info.peak_flops.bf16 = tensor.filter(|_| sm >= 80);
    }
    info.features.push(gemm_feature(
        CUBLAS.locate(options).as_deref().map_err(|e| e.as_str()),
        options.vendor_blas,
    ));
    Ok(info)
}

/// Dense f16 tensor-core FLOP per clock per SM with f32 accumulation, from
/// NVIDIA's data-center parts: V100 and T4 (sm_70, sm_75), A100 (sm_80,
/// twice that), A10 and L40S (sm_86, sm_89), H100 (sm_90, four times).
fn tensor_flops_per_clock(sm: u32) -> Option<f64> {
    match sm {
        70..=79 | 86..=89 => Some(1024.0),
        80 => Some(2048.0),
        90 => Some(4096.0),
        _ => None,
    }
}

/// Opens device `i`: PTX from NVRTC for its compute capability, JIT-loaded
/// by the driver.
pub fn open(api: Arc<ModuleApi>, i: usize, options: &GpuOptions) -> Result<ModuleDriver> {
    let sm = compute_capability(&api, i)?;
    let target = Target::Cuda { sm };
    let compiler = KernelCompiler {
        load: nvrtc::load,
        options: target.rtc_options(),
        arch: format!("sm_{sm}"),
        nul_terminated: true,
    };
    ModuleDriver::open(api, i, target.warp_size(), compiler, &CUBLAS, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_peaks_match_the_published_dense_f16_rates() {
        // H100 SXM: 132 SMs at 1.83 GHz boost, 989 TFLOP/s dense f16.
        let h100 = tensor_flops_per_clock(90).unwrap_or(0.0) * 132.0 * 1.83e9;
        assert!((h100 / 989e12 - 1.0).abs() < 0.01, "{h100}");
        // A100: 108 SMs at 1.41 GHz, 312 TFLOP/s.
        let a100 = tensor_flops_per_clock(80).unwrap_or(0.0) * 108.0 * 1.41e9;
        assert!((a100 / 312e12 - 1.0).abs() < 0.01, "{a100}");
        assert_eq!(tensor_flops_per_clock(60), None);
    }
}
