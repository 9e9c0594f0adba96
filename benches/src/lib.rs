//! # glmhal-benches
//!
//! Helpers for the criterion benchmarks in `benches/`: which backends to
//! measure (every available one by default, so ratios between them come from
//! one process on one machine) and GLM-shaped inputs on their devices.
//!
//! `GLMHAL_BENCH_BACKENDS=cpu,wgpu:1,opencl` picks devices by selector
//! (default `cpu,wgpu,opencl`). On a machine without a GPU the wgpu numbers
//! are Mesa's software drivers and the OpenCL ones PoCL on the CPU: kept for
//! regressions, not for comparing vendors.

pub mod bandwidth;
pub mod compare;
pub mod html;
pub mod junit;
pub mod measure;
pub mod model;
pub mod schema;
pub mod sweep;

use glmhal_hal::{quant, Backend, BackendOptions, BackendProvider, Buffer, DType, Result, Rng};

/// Environment variable with the comma-separated selectors to benchmark.
pub const BACKENDS_ENV: &str = "GLMHAL_BENCH_BACKENDS";

/// The devices to benchmark with their selectors. Unavailable backends are
/// reported on stderr and left out; nothing runs elsewhere in their place.
/// Criterion's targets have no command line of their own, so their
/// environment steers them (the documented exception for harnesses): the
/// selectors from [`BACKENDS_ENV`], the options from the `GLMHAL_*`
/// variables as the CLI maps them.
pub fn backends() -> Vec<(String, Box<dyn Backend>)> {
    // Environment: a criterion target's only input (see above).
    let wanted = std::env::var(BACKENDS_ENV).unwrap_or_else(|_| "cpu,wgpu,opencl".into());
    let options = match BackendOptions::from_variables(|var| std::env::var(var).ok()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("bench: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for selector in wanted.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, index) = match selector.split_once(':') {
            Some((n, i)) => (n, i.parse::<usize>().ok()),
            None => (selector, None),
        };
        let provider: &dyn BackendProvider = match name {
            "cpu" => &glmhal_cpu::Provider,
            "wgpu" => &glmhal_wgpu::Provider,
            "opencl" => &glmhal_opencl::Provider,
            other => {
                eprintln!("bench: unknown backend `{other}` skipped");
                continue;
            }
        };
        match provider.open(index, &options) {
            Ok(b) => out.push((selector.to_string(), b)),
            Err(e) => eprintln!("bench: {selector} not measured: {e}"),
        }
    }
    out
}

/// A buffer on `backend` holding `n` seeded values in (-1, 1) encoded as `dtype`.
pub fn random_buffer(backend: &dyn Backend, dtype: DType, n: usize, seed: u64) -> Result<Buffer> {
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let bytes = quant::from_f32(dtype, &values)?;
    backend.upload_new(&bytes)
}
