//! What each HIP device is, and how one is opened: its `gcnArchName` picks
//! the hiprtc target and its wavefront width the kernels' `GLMHAL_WARP`.

use std::ffi::{c_int, c_void};
use std::sync::Arc;

use glmhal_gpu::blas::gemm_feature;
use glmhal_gpu::module_api::{KernelCompiler, ModuleApi, ModuleDriver};
use glmhal_gpu::{hiprtc, Target};
use glmhal_hal::{DeviceInfo, GpuOptions, HalError, Result};

use crate::symbols::{attribute, ROCBLAS};

type VersionFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type PropertiesFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;

/// The runtime's version as HIP encodes it (major·10⁷ + minor·10⁵ + patch).
fn runtime_version(api: &ModuleApi) -> i32 {
    // SAFETY: hipRuntimeGetVersion is declared with its C signature.
    let Ok(get) = (unsafe { api.extra::<VersionFn>("hipRuntimeGetVersion") }) else {
        return 0;
    };
    let mut v = 0;
    // SAFETY: `v` is valid for writes.
    unsafe { get(&mut v) };
    v
}

/// The runtime as messages name it: its file and version.
pub fn label(api: &ModuleApi) -> String {
    let code = runtime_version(api);
    format!(
        "{} (HIP runtime {}.{}.{})",
        api.path,
        code / 10_000_000,
        code / 100_000 % 100,
        code % 100_000
    )
}

/// Device `i`'s `gcnArchName` without feature suffixes (`gfx90a`), from the
/// properties struct, read into a zeroed 4 KiB buffer (larger than either
/// layout). ROCm >= 6 headers map hipGetDeviceProperties to the R0600
/// symbol, whose struct is larger; ROCm 5 and DTK have only the legacy one.
pub fn arch(api: &ModuleApi, i: usize) -> Option<String> {
    // SAFETY: both symbols are declared with their C signature.
    let (get, offset) = unsafe { api.extra::<PropertiesFn>("hipGetDevicePropertiesR0600") }
        .map(|f| (f, 1160))
        // SAFETY: as above.
        .or_else(|_| {
            unsafe { api.extra::<PropertiesFn>("hipGetDeviceProperties") }.map(|f| (f, 396))
        })
        .ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: the buffer is larger than every known hipDeviceProp_t.
    if unsafe { get(buf.as_mut_ptr().cast(), i as c_int) } != 0 {
        return None;
    }
    let raw = &buf[offset..offset + 256];
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    let name = String::from_utf8_lossy(&raw[..end]).into_owned();
    let arch = name.split(':').next().unwrap_or("").to_string();
    arch.starts_with("gfx").then_some(arch)
}

/// Facts about device `i`.
pub fn describe(api: &ModuleApi, i: usize, options: &GpuOptions) -> Result<DeviceInfo> {
    let name = api.name(i)?;
    let vendor = if name.to_ascii_lowercase().contains("hygon") || api.path.contains("dtk") {
        "Hygon"
    } else {
        "AMD"
    };
    let arch = arch(api, i).unwrap_or_else(|| "unknown gfx".into());
    let mut info = DeviceInfo::new("hip", i, vendor, &name, &arch);
    info.memory_total = api.total_memory(i).ok();
    info.compute_units = api
        .attribute(i, attribute::MULTIPROCESSOR_COUNT)
        .ok()
        .map(|v| v as u32);
    info.runtime_version = Some(format!("HIP {} ({})", runtime_version(api), api.path));
    info.driver_version = Some(api.driver_version().to_string());
    if let Ok(w) = api.attribute(i, attribute::WARP_SIZE) {
        info.features.push(format!("wavefront={w}"));
    }
    info.features.push(gemm_feature(
        ROCBLAS.locate(options).as_deref().map_err(|e| e.as_str()),
        options.vendor_blas,
    ));
    Ok(info)
}

/// Opens device `i`: code objects from hiprtc for its `gcnArchName` and
/// wavefront width.
pub fn open(api: Arc<ModuleApi>, i: usize, options: &GpuOptions) -> Result<ModuleDriver> {
    let arch = arch(&api, i).ok_or_else(|| HalError::Unavailable {
        backend: format!("hip:{i}"),
        reason: "the device's gcnArchName could not be read, so kernels cannot be compiled for it"
            .into(),
    })?;
    let warp = api.attribute(i, attribute::WARP_SIZE).unwrap_or(64).max(1) as u32;
    let compiler = KernelCompiler {
        load: |_| hiprtc::load(),
        options: Target::Hip { arch: arch.clone() }.rtc_options(),
        arch,
        nul_terminated: false,
    };
    ModuleDriver::open(api, i, warp, compiler, &ROCBLAS, options)
}
