//! What each OpenCL device is, for `glmhal devices` and reports.

use opencl3::device::{
    CL_DEVICE_TYPE_ACCELERATOR, CL_DEVICE_TYPE_CPU, CL_DEVICE_TYPE_CUSTOM, CL_DEVICE_TYPE_GPU,
};

use glmhal_hal::DeviceInfo;

use crate::loader::Found;

/// The device type as a word.
pub fn kind(found: &Found) -> &'static str {
    match found.device.dev_type() {
        Ok(t) if t & CL_DEVICE_TYPE_GPU != 0 => "GPU",
        Ok(t) if t & CL_DEVICE_TYPE_CPU != 0 => "CPU",
        Ok(t) if t & CL_DEVICE_TYPE_ACCELERATOR != 0 => "accelerator",
        Ok(t) if t & CL_DEVICE_TYPE_CUSTOM != 0 => "custom",
        _ => "unknown type",
    }
}

/// Facts about device `index` (its position across all platforms).
pub fn describe(index: usize, found: &Found) -> DeviceInfo {
    let d = &found.device;
    let text = |r: opencl3::Result<String>| r.map(|s| s.trim().to_string()).unwrap_or_default();
    let name = text(d.name());
    let vendor = text(d.vendor());
    let version = text(d.version());
    let mut info = DeviceInfo::new("opencl", index, &vendor, &name, &version);
    info.memory_total = d.global_mem_size().ok();
    info.compute_units = d.max_compute_units().ok();
    info.driver_version = d.driver_version().ok().map(|s| s.trim().to_string());
    info.runtime_version = Some(format!(
        "{} ({})",
        text(found.platform.name()),
        text(found.platform.version())
    ));
    info.features.push(format!("type={}", kind(found)));
    info.features.push(format!(
        "c={}",
        text(d.opencl_c_version()).replace(' ', "_")
    ));
    if let Ok(max) = d.max_mem_alloc_size() {
        info.features.push(format!("max_alloc={}MiB", max >> 20));
    }
    if let Ok(local) = d.local_mem_size() {
        info.features.push(format!("local_mem={}KiB", local >> 10));
    }
    if let Ok(group) = d.max_work_group_size() {
        info.features.push(format!("max_group={group}"));
    }
    info.features
        .extend(text(d.extensions()).split_whitespace().map(str::to_string));
    info
}
