//! Adapter discovery and what each adapter is.

use glmhal_hal::DeviceInfo;

/// The instance, honouring `WGPU_BACKEND` (vulkan, gl, metal, dx12).
pub fn instance() -> (wgpu::Instance, wgpu::Backends) {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = desc.backends;
    (wgpu::Instance::new(desc), backends)
}

/// Every adapter, in the order `wgpu:N` indexes them.
pub fn adapters() -> Vec<wgpu::Adapter> {
    let (instance, backends) = instance();
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// Preference when no index is given: real GPUs first.
pub fn rank(adapter: &wgpu::Adapter) -> u8 {
    match adapter.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn vendor_name(id: u32) -> String {
    match id {
        0x10de => "NVIDIA".into(),
        0x1002 | 0x1022 => "AMD".into(),
        0x8086 => "Intel".into(),
        0x13b5 => "ARM".into(),
        0x5143 => "Qualcomm".into(),
        0x106b => "Apple".into(),
        0x1d17 => "Zhaoxin".into(),
        0x10005 => "Mesa".into(),
        0 => "unknown".into(),
        other => format!("0x{other:04x}"),
    }
}

/// Facts about adapter `index`.
pub fn describe(index: usize, adapter: &wgpu::Adapter) -> DeviceInfo {
    let i = adapter.get_info();
    let arch = format!("{:?} {:?}", i.backend, i.device_type).to_lowercase();
    let mut info = DeviceInfo::new("wgpu", index, &vendor_name(i.vendor), &i.name, &arch);
    let driver = format!("{} {}", i.driver, i.driver_info).trim().to_string();
    info.driver_version = (!driver.is_empty()).then_some(driver);
    info.runtime_version = Some(format!("wgpu 30 ({:?})", i.backend));
    let f = adapter.features();
    let l = adapter.limits();
    for (flag, name) in [
        (wgpu::Features::SHADER_F16, "shader_f16"),
        (wgpu::Features::SUBGROUP, "subgroup"),
        (wgpu::Features::TIMESTAMP_QUERY, "timestamp_query"),
    ] {
        if f.contains(flag) {
            info.features.push(name.into());
        }
    }
    info.features.push(format!(
        "max_storage_buffer_binding_size={}",
        l.max_storage_buffer_binding_size
    ));
    info.features
        .push(format!("max_buffer_size={}", l.max_buffer_size));
    info.features.push(format!(
        "max_storage_buffers_per_shader_stage={}",
        l.max_storage_buffers_per_shader_stage
    ));
    info.features.push(format!(
        "max_compute_workgroup_size_x={}",
        l.max_compute_workgroup_size_x
    ));
    info
}
