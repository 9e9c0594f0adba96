//! Discovery of the host CPU and its facts.

use glmhal_hal::{ActivationBits, DeviceInfo};

use crate::kernels::simd::Isa;

/// Describes the host CPU run with `threads` workers, kernels at `level`
/// and `bits` activations. Reads `/proc` where it exists; never fails.
pub(crate) fn describe(threads: usize, level: Isa, bits: ActivationBits) -> DeviceInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let vendor = field("vendor_id")
        .or_else(|| field("CPU implementer"))
        .unwrap_or_else(|| "unknown".into());
    let name = field("model name")
        .or_else(|| field("Model"))
        .unwrap_or_else(|| format!("{} CPU", std::env::consts::ARCH));
    let features = simd_features();
    let mut arch = std::env::consts::ARCH.to_string();
    for f in &features {
        arch.push('+');
        arch.push_str(f);
    }
    let mut info = DeviceInfo::new("cpu", 0, &vendor, &name, &arch);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    info.memory_total = kib("MemTotal:");
    info.memory_free = kib("MemAvailable:");
    info.compute_units = u32::try_from(threads).ok();
    // BF16 prefill products round activations to bf16 where the CPU can
    // multiply bf16 pairs: say so where a user compares numbers.
    let bf16 = if crate::kernels::simd::has_avx512_bf16_at(level) {
        ", bf16 products for bf16 weights"
    } else {
        ""
    };
    info.runtime_version = Some(format!(
        "glmhal-cpu {} ({threads} threads, {} kernels, {} activations for Q8_0/Q4_0{bf16})",
        env!("CARGO_PKG_VERSION"),
        level.name(),
        bits.name()
    ));
    info.features = features;
    info
}

/// SIMD extensions the kernels may use, detected at run time.
fn simd_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut found: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            found.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            found.push("fma");
        }
        if std::arch::is_x86_feature_detected!("f16c") {
            found.push("f16c");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            found.push("avx512f");
        }
        if std::arch::is_x86_feature_detected!("avx512vnni") {
            found.push("avx512vnni");
        }
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            found.push("avx512bf16");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            found.push("neon");
        }
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            found.push("dotprod");
        }
    }
    found.into_iter().map(String::from).collect()
}
