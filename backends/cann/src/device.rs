//! The process-wide ACL runtime (`aclInit` once) and device discovery.

use std::sync::{Arc, OnceLock};

use glmhal_hal::{DeviceInfo, HalError, Result};

use crate::loader::Acl;

static ACL: OnceLock<std::result::Result<Arc<Acl>, String>> = OnceLock::new();

/// The loaded and initialized runtime (loaded and `aclInit` called once per process).
pub fn acl() -> Result<Arc<Acl>> {
    ACL.get_or_init(|| {
        let acl = Acl::load().map_err(|e| match e {
            HalError::Unavailable { reason, .. } => reason,
            other => other.to_string(),
        })?;
        // SAFETY: NULL selects the default configuration; called once.
        acl.check("aclInit", unsafe { (acl.init)(std::ptr::null()) })
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(acl))
    })
    .clone()
    .map_err(|reason| HalError::Unavailable {
        backend: "cann".into(),
        reason,
    })
}

/// Devices the runtime reports.
pub fn count(acl: &Acl) -> Result<usize> {
    let mut n = 0u32;
    // SAFETY: `n` is valid for writes.
    acl.check("aclrtGetDeviceCount", unsafe { (acl.device_count)(&mut n) })?;
    Ok(n as usize)
}

/// Facts about device `i` (sets it current to read its memory).
pub fn describe(acl: &Acl, i: usize) -> Result<DeviceInfo> {
    // SAFETY: `i` is below the device count.
    acl.check("aclrtSetDevice", unsafe { (acl.set_device)(i as i32) })?;
    let soc = acl.soc();
    let mut info = DeviceInfo::new("cann", i, "Huawei", &soc, &soc);
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: both pointers are valid for writes; attribute 0 is device memory.
    if unsafe { (acl.mem_info)(0, &mut free, &mut total) } == 0 {
        info.memory_total = Some(total as u64);
        info.memory_free = Some(free as u64);
    }
    info.runtime_version = Some(format!("CANN ({})", acl.root.display()));
    if supports_bf16(&soc) {
        info.features.push("bf16".into());
    }
    if has_weight_quant_matmul(&soc) {
        info.features.push("weight-quant-matmul".into());
    }
    Ok(info)
}

/// Whether aclnnWeightQuantBatchMatmulV2 exists on the SoC: Atlas A2/A3
/// (Ascend 910B, 910_93) and Atlas inference parts (310P); not the first
/// Ascend 910 training parts or the 310B (Atlas 200I/500 A2).
pub fn has_weight_quant_matmul(soc: &str) -> bool {
    soc.contains("910B") || soc.contains("910_93") || soc.contains("310P")
}

/// bf16 is not supported on Ascend 310P parts.
pub fn supports_bf16(soc: &str) -> bool {
    !soc.contains("310P")
}
