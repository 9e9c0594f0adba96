//! What `glmhal bench` and `glmhal ci` write: versioned JSON documents with a
//! fingerprint of each device, so numbers are only ever compared with numbers
//! from the same device, driver and glmhal version.

use glmhal_hal::{Backend, DeviceInfo};
use serde::{Deserialize, Serialize};

use crate::measure::Stats;

/// Schema of `glmhal bench --json`.
pub const BENCH_SCHEMA: &str = "glmhal.bench/1";

/// Which device produced a number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The selector used (`cpu`, `wgpu:1`).
    pub backend: String,
    /// Vendor and device name.
    pub device: String,
    /// Driver version, where the backend knows it.
    pub driver: Option<String>,
    /// Runtime (library) version, where the backend knows it.
    pub runtime: Option<String>,
    /// The glmhal that measured.
    pub glmhal_version: String,
}

impl Fingerprint {
    /// The fingerprint of an opened device.
    pub fn of(selector: &str, backend: &dyn Backend) -> Self {
        Self::from_info(selector, backend.info())
    }

    /// The fingerprint of a device described by `info`.
    pub fn from_info(selector: &str, info: &DeviceInfo) -> Self {
        Fingerprint {
            backend: selector.to_string(),
            device: format!("{} {}", info.vendor, info.name),
            driver: info.driver_version.clone(),
            runtime: info.runtime_version.clone(),
            glmhal_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Whether two fingerprints name the same device and software, ignoring
    /// the selector's index (devices may enumerate in another order).
    pub fn same_device(&self, other: &Fingerprint) -> bool {
        let name = |s: &str| s.split(':').next().unwrap_or(s).to_string();
        name(&self.backend) == name(&other.backend)
            && self.device == other.device
            && self.driver == other.driver
            && self.runtime == other.runtime
            && self.glmhal_version == other.glmhal_version
    }
}

/// A device's peak, the denominator of "share of peak".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// The selector.
    pub backend: String,
    /// FLOP/s (f32), where known.
    pub flops: Option<f64>,
    /// f16 matrix (tensor-core) FLOP/s, where the device states it.
    #[serde(default)]
    pub tensor_flops: Option<f64>,
    /// Bytes/s of device memory, where known.
    pub bytes_per_s: Option<f64>,
    /// `device info` (vendor figures) or `measured` (the best this run saw).
    pub source: String,
}

/// One op at one shape on one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpMeasurement {
    /// The selector.
    pub backend: String,
    /// Op name (`mat_mul`, `attention`, ...).
    pub op: String,
    /// What the shape is in GLM terms (`glm-4-9b qkv decode`, `ctx 4096`).
    pub label: String,
    /// Tensors, as `describe` prints them.
    pub shapes: String,
    /// Floating-point operations per run.
    pub flops: f64,
    /// Bytes moved per run (inputs read once, outputs written once).
    pub bytes: f64,
    /// Timing.
    pub stats: Stats,
    /// flops / median time, in GFLOP/s.
    pub gflops: f64,
    /// bytes / median time, in GB/s.
    pub gbps: f64,
    /// Share of the device's peak compute, where known.
    pub compute_share: Option<f64>,
    /// Share of the device's peak bandwidth, where known.
    pub bandwidth_share: Option<f64>,
    /// For products with f16, bf16 or quantized weights: share of the
    /// device's f16 matrix (tensor-core) peak, where known.
    #[serde(default)]
    pub tensor_share: Option<f64>,
}

impl OpMeasurement {
    /// A measurement with its rates filled in.
    pub fn new(
        backend: &str,
        op: &str,
        label: String,
        shapes: String,
        flops: f64,
        bytes: f64,
        stats: Stats,
    ) -> Self {
        let t = stats.median_s.max(1e-12);
        OpMeasurement {
            backend: backend.to_string(),
            op: op.to_string(),
            label,
            shapes,
            flops,
            bytes,
            stats,
            gflops: flops / t / 1e9,
            gbps: bytes / t / 1e9,
            compute_share: None,
            bandwidth_share: None,
            tensor_share: None,
        }
    }
}

/// Whole-model speed on one device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeasurement {
    /// The selector.
    pub backend: String,
    /// Model name (preset or directory name).
    pub model: String,
    /// Weight dtype on the device.
    pub weights: String,
    /// Bytes of weights on the device.
    pub weight_bytes: u64,
    /// Bytes of weights one decode token reads: all of them but the
    /// embedding rows it does not look up and, in a routed model, the
    /// experts it does not choose.
    #[serde(default)]
    pub active_weight_bytes: u64,
    /// Seconds to load the weights onto the device.
    pub load_s: f64,
    /// Prompt tokens of the prefill.
    pub prompt_tokens: usize,
    /// Prefill timing (one step over the prompt).
    pub prefill: Stats,
    /// Prompt tokens per second.
    pub prefill_tps: f64,
    /// Decode at each batch size.
    pub decode: Vec<DecodeMeasurement>,
}

/// Decode speed at one batch size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodeMeasurement {
    /// Sequences decoded together.
    pub batch: usize,
    /// One step (one new token for each sequence).
    pub step: Stats,
    /// Generated tokens per second, all sequences together.
    pub tps: f64,
    /// Weight bytes a step reads (every weight it multiplies once, its
    /// embedding rows, a routed model's chosen experts only) per second.
    pub effective_gbps: f64,
    /// `effective_gbps` over the device's bandwidth peak (on a CPU, the read
    /// ceiling measured in the same run), when known.
    #[serde(default)]
    pub ceiling_share: Option<f64>,
    /// Heap allocations per step on every thread, where the binary counts
    /// them (`glmhal` does; the goal is 0).
    #[serde(default)]
    pub allocations_per_step: Option<f64>,
    /// What one step asked of the device, where the backend counts it.
    #[serde(default)]
    pub structure: Option<StepStructure>,
}

/// The structure of one decode step: what was launched, copied and waited
/// for, and the bytes its kernels read against the least the step needs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStructure {
    /// The backend's counts over one step.
    pub counters: glmhal_hal::WorkCounters,
    /// Kernel launches and library calls per layer.
    pub launches_per_layer: f64,
    /// Weights once (the embedding's looked-up rows only) and each
    /// sequence's visible keys and values once per layer.
    pub minimum_bytes: u64,
    /// `counters.bytes_read` over `minimum_bytes` (1 is the goal).
    pub read_ratio: f64,
}

/// The document `glmhal bench --json` writes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Always [`BENCH_SCHEMA`].
    pub schema: String,
    /// glmhal version.
    pub glmhal_version: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// Every device measured.
    pub fingerprints: Vec<Fingerprint>,
    /// Their peaks.
    pub peaks: Vec<Peak>,
    /// Op sweeps.
    pub ops: Vec<OpMeasurement>,
    /// Models.
    pub models: Vec<ModelMeasurement>,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One comparable number: seconds per run of something (lower is better).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The selector.
    pub backend: String,
    /// Stable name, e.g. `op/mat_mul/tiny qkv decode/f16` or `model/tiny/decode/batch4`.
    pub name: String,
    /// Timing.
    pub stats: Stats,
}

impl BenchReport {
    /// An empty report stamped now.
    pub fn new() -> Self {
        BenchReport {
            schema: BENCH_SCHEMA.into(),
            glmhal_version: env!("CARGO_PKG_VERSION").into(),
            created_unix: now_unix(),
            ..Default::default()
        }
    }

    /// Every timing as a comparable metric.
    pub fn metrics(&self) -> Vec<Metric> {
        let mut out = Vec::new();
        for m in &self.ops {
            out.push(Metric {
                backend: m.backend.clone(),
                name: format!("op/{}/{}", m.op, m.label),
                stats: m.stats,
            });
        }
        for m in &self.models {
            out.push(Metric {
                backend: m.backend.clone(),
                name: format!("model/{}/{}/prefill{}", m.model, m.weights, m.prompt_tokens),
                stats: m.prefill,
            });
            for d in &m.decode {
                out.push(Metric {
                    backend: m.backend.clone(),
                    name: format!("model/{}/{}/decode/batch{}", m.model, m.weights, d.batch),
                    stats: d.step,
                });
            }
        }
        out
    }
}
