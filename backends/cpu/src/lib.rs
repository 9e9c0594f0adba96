//! # glmhal-cpu
//!
//! The CPU backend: every op of the catalogue for every dtype combination,
//! multi-threaded with rayon. It is the backend every user meets first.
//!
//! File layout (the same in every backend crate):
//! - `lib.rs`: the [`Provider`] the registry discovers;
//! - `device.rs`: device discovery and [`glmhal_hal::DeviceInfo`];
//! - `memory.rs`: buffers;
//! - `queue.rs`: the [`glmhal_hal::Backend`] implementation;
//! - `support.rs`: honest answers to `supports`;
//! - `kernels/`: one file per op family.

mod device;
mod kernels;
mod memory;
mod queue;
mod support;

pub use memory::CpuBuffer;
pub use queue::CpuBackend;

use glmhal_hal::{Availability, Backend, BackendProvider, HalError, Result};

/// Environment variable that sets the number of worker threads.
pub const THREADS_ENV: &str = "GLMHAL_CPU_THREADS";

/// Environment variable that caps the kernels' instruction set:
/// `portable`, `avx2` or `avx512` (the default is the best the CPU has).
pub const ISA_ENV: &str = "GLMHAL_CPU_ISA";

/// Environment variable that sets how Q8_0/Q4_0 products quantize their
/// activations: `int8` (the default) or `int16`.
pub const ACTIVATIONS_ENV: &str = "GLMHAL_CPU_ACTIVATIONS";

/// Registry entry for the CPU backend. The CPU is always available.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

/// Worker threads: `GLMHAL_CPU_THREADS` if set, else every core the process may use.
pub fn default_threads() -> Result<usize> {
    match std::env::var(THREADS_ENV) {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                HalError::invalid(
                    THREADS_ENV,
                    format!("`{v}` is not a positive number of threads"),
                )
            }),
        Err(_) => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// The worker threads, once the environment's settings are known to be valid.
fn settings() -> Result<usize> {
    if let Some(reason) = kernels::simd::isa_setting_error() {
        return Err(HalError::invalid(ISA_ENV, reason));
    }
    if let Some(reason) = kernels::simd::activation_setting_error() {
        return Err(HalError::invalid(ACTIVATIONS_ENV, reason));
    }
    default_threads()
}

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn probe(&self) -> Availability {
        match settings() {
            Ok(threads) => Availability::Available {
                devices: vec![device::describe(threads)],
            },
            Err(e) => Availability::Unavailable {
                kind: glmhal_hal::UnavailableKind::Other,
                detail: e.to_string(),
            },
        }
    }

    fn open(&self, index: Option<usize>) -> Result<Box<dyn Backend>> {
        if let Some(i) = index.filter(|i| *i != 0) {
            return Err(HalError::Unavailable {
                backend: format!("cpu:{i}"),
                reason: "the CPU backend has one device, cpu:0".into(),
            });
        }
        Ok(Box::new(CpuBackend::new(settings()?)?))
    }
}
