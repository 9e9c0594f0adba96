//! The process-wide ACL runtime (`aclInit` once, `aclFinalize` once when
//! the program shuts the provider down), the device context of each
//! calling thread, and device discovery.

use std::cell::Cell;
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

/// `aclFinalize`, once per process and only after `aclInit` succeeded;
/// the program calls it (through `Provider::shutdown`) once every backend,
/// stream and buffer has been released.
pub fn finalize() {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Some(Ok(acl)) = ACL.get() {
        if !DONE.swap(true, std::sync::atomic::Ordering::AcqRel) {
            // SAFETY: aclInit succeeded; this runs once.
            if let Err(e) = acl.check("aclFinalize", unsafe { (acl.finalize)() }) {
                eprintln!("cann: {e}");
            }
        }
    }
}

thread_local! {
    /// The device whose context this thread holds (ACL contexts are per thread).
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Makes device `index`'s default context current on the calling thread
/// (`aclrtSetDevice`, once per thread and device): every thread that calls
/// ACL needs one.
pub fn bind(acl: &Acl, index: usize) -> Result<()> {
    if CURRENT.get() == Some(index) {
        return Ok(());
    }
    // SAFETY: `index` is below the device count (checked at open).
    acl.check("aclrtSetDevice", unsafe { (acl.set_device)(index as i32) })?;
    CURRENT.set(Some(index));
    Ok(())
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
    bind(acl, i)?;
    let soc = acl.soc();
    let mut info = DeviceInfo::new("cann", i, "Huawei", &soc, &soc);
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: both pointers are valid for writes; attribute 0 is device memory.
    if unsafe { (acl.mem_info)(0, &mut free, &mut total) } == 0 {
        info.memory_total = Some(total as u64);
        info.memory_free = Some(free as u64);
    }
    info.runtime_version = Some(format!("CANN ({})", acl.root.display()));
    let family = Family::of(&soc);
    if family.has_bf16() {
        info.features.push("bf16".into());
    }
    if family.has_weight_quant_matmul() {
        info.features.push("weight-quant-matmul".into());
    }
    if family.has_rotary_position_embedding() {
        info.features.push("rotary-position-embedding".into());
    }
    if !family.has_f32_cube() {
        info.features.push("f32-products-in-f16".into());
    }
    Ok(info)
}

/// The SoC families whose aclnn support differs (docs/PORTING-CANN.md
/// lists each fact with the document it was checked against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Atlas A2/A3 training and 800I A2 inference (Ascend 910B, 910_93).
    A2,
    /// Atlas training series (the first Ascend 910).
    Training,
    /// Atlas inference series (Ascend 310P).
    Inference,
    /// Parts this backend has no facts for (310B and later): treated as the
    /// most restricted family, so nothing is assumed.
    Other,
}

/// aclnn matmul `cubeMathType` KEEP_DTYPE: compute in the inputs' dtype.
pub const KEEP_DTYPE: i8 = 0;
/// aclnn matmul `cubeMathType` ALLOW_FP32_DOWN_PRECISION: f32 inputs may be
/// computed in f16 (training and inference series) or HFLOAT32 (A2).
pub const ALLOW_FP32_DOWN_PRECISION: i8 = 1;

impl Family {
    /// The family of a SoC name (`Ascend910B3`, `Ascend910A`, `Ascend310P3`).
    pub fn of(soc: &str) -> Family {
        if soc.contains("310P") {
            Family::Inference
        } else if soc.contains("910B") || soc.contains("910_93") {
            Family::A2
        } else if soc.contains("910") {
            Family::Training
        } else {
            Family::Other
        }
    }

    /// bf16 tensors exist on Atlas A2 only.
    pub fn has_bf16(self) -> bool {
        self == Family::A2
    }

    /// aclnnWeightQuantBatchMatmulV2 exists on Atlas A2 and the inference
    /// series; not on the first 910 training parts.
    pub fn has_weight_quant_matmul(self) -> bool {
        matches!(self, Family::A2 | Family::Inference)
    }

    /// aclnnRotaryPositionEmbedding exists on Atlas A2 only; elsewhere rope
    /// is composed from elementwise ops.
    pub fn has_rotary_position_embedding(self) -> bool {
        self == Family::A2
    }

    /// aclnnRmsNorm exists everywhere but on the training series.
    pub fn has_rms_norm(self) -> bool {
        matches!(self, Family::A2 | Family::Inference)
    }

    /// aclnnLayerNorm exists everywhere but on the inference series.
    pub fn has_layer_norm(self) -> bool {
        matches!(self, Family::A2 | Family::Training)
    }

    /// Whether the cube unit computes f32 products in f32. The training and
    /// inference series have no f32 cube path: KEEP_DTYPE with f32 inputs is
    /// refused there, and ALLOW_FP32_DOWN_PRECISION computes them in f16.
    pub fn has_f32_cube(self) -> bool {
        self == Family::A2
    }

    /// The `cubeMathType` for a product whose inputs have aclDataType
    /// `acl_dtype`: KEEP_DTYPE wherever the cube keeps it, otherwise the
    /// documented down-precision (whose f16 rounding [`crate::support`]
    /// declares).
    pub fn cube_math_type(self, acl_dtype: i32) -> i8 {
        if acl_dtype == crate::loader::ACL_FLOAT && !self.has_f32_cube() {
            ALLOW_FP32_DOWN_PRECISION
        } else {
            KEEP_DTYPE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_follow_the_soc_family() {
        let a2 = Family::of("Ascend910B3");
        assert_eq!(a2, Family::A2);
        assert!(a2.has_bf16() && a2.has_rotary_position_embedding() && a2.has_f32_cube());
        assert_eq!(a2.cube_math_type(crate::loader::ACL_FLOAT), KEEP_DTYPE);
        let training = Family::of("Ascend910A");
        assert_eq!(training, Family::Training);
        assert!(!training.has_weight_quant_matmul() && !training.has_rotary_position_embedding());
        assert_eq!(
            training.cube_math_type(crate::loader::ACL_FLOAT),
            ALLOW_FP32_DOWN_PRECISION
        );
        let inference = Family::of("Ascend310P3");
        assert_eq!(inference, Family::Inference);
        assert!(!inference.has_bf16() && inference.has_weight_quant_matmul());
        assert_eq!(
            inference.cube_math_type(crate::loader::ACL_FLOAT16),
            KEEP_DTYPE
        );
        assert_eq!(Family::of("Ascend310B1"), Family::Other);
    }
}
