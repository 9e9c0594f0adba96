//! `glmhal devices`: every backend, available or not and why, with device details.

use glmhal_hal::{Availability, DeviceInfo, Result};

use crate::style::paint;

/// Prints the device table (or JSON).
pub fn run(json: bool, colour: bool) -> Result<()> {
    let statuses = crate::backends::registry()?.discover();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&statuses).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{:<10} {:<10} {:<12} details",
        "backend", "device", "status"
    );
    for s in &statuses {
        match &s.availability {
            Availability::Available { devices } => {
                for d in devices {
                    let status = paint(colour, "32", &format!("{:<12}", "available"));
                    println!(
                        "{:<10} {:<10} {status} {}",
                        s.backend,
                        d.selector().to_string(),
                        summary(d)
                    );
                    for line in details(d) {
                        println!("{:<35} {line}", "");
                    }
                }
            }
            Availability::Unavailable { kind, detail } => {
                let status = paint(colour, "33", &format!("{:<12}", "unavailable"));
                let kind = serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                println!("{:<10} {:<10} {status} {kind}: {detail}", s.backend, "-");
            }
        }
    }
    Ok(())
}

fn summary(d: &DeviceInfo) -> String {
    format!("{} ({})", d.name, d.vendor)
}

fn details(d: &DeviceInfo) -> Vec<String> {
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
    let mut lines = vec![format!("architecture: {}", d.architecture)];
    if let Some(t) = d.memory_total {
        let free = d
            .memory_free
            .map(|f| format!(", {} free", gib(f)))
            .unwrap_or_default();
        lines.push(format!("memory: {}{free}", gib(t)));
    }
    if let Some(u) = d.compute_units {
        lines.push(format!("compute units: {u}"));
    }
    if let Some(v) = &d.driver_version {
        lines.push(format!("driver: {v}"));
    }
    if let Some(v) = &d.runtime_version {
        lines.push(format!("runtime: {v}"));
    }
    let peak = &d.peak_flops;
    let peaks: Vec<String> = [
        ("f32", peak.f32),
        ("f16", peak.f16),
        ("bf16", peak.bf16),
        ("int8", peak.int8),
    ]
    .iter()
    .filter_map(|(n, v)| v.map(|v| format!("{n} {:.1} TFLOP/s", v / 1e12)))
    .collect();
    lines.push(if peaks.is_empty() {
        "peak compute: not known (measured by benchmarks)".into()
    } else {
        format!("peak compute: {}", peaks.join(", "))
    });
    lines.push(match d.peak_bandwidth {
        Some(bw) => format!("peak bandwidth: {:.0} GB/s", bw / 1e9),
        None => "peak bandwidth: not known (measured by benchmarks)".into(),
    });
    if !d.features.is_empty() {
        lines.push(format!("features: {}", d.features.join(" ")));
    }
    lines
}
