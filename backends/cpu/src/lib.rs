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

use glmhal_hal::{
    Availability, Backend, BackendOptions, BackendProvider, CpuOptions, HalError, Result,
};

/// Registry entry for the CPU backend. The CPU is always available.
#[derive(Clone, Copy, Debug, Default)]
pub struct Provider;

/// Worker threads: `options.threads` if set, else every core the process may use.
pub fn threads(options: &CpuOptions) -> usize {
    options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl BackendProvider for Provider {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn probe(&self, options: &BackendOptions) -> Availability {
        Availability::Available {
            devices: vec![device::describe(
                threads(&options.cpu),
                kernels::simd::level_under(options.cpu.isa),
                options.cpu.activations,
            )],
        }
    }

    fn open(&self, index: Option<usize>, options: &BackendOptions) -> Result<Box<dyn Backend>> {
        if let Some(i) = index.filter(|i| *i != 0) {
            return Err(HalError::Unavailable {
                backend: format!("cpu:{i}"),
                reason: "the CPU backend has one device, cpu:0".into(),
            });
        }
        kernels::simd::configure(options.cpu.isa, options.cpu.activations)
            .map_err(|why| HalError::invalid("cpu", why))?;
        Ok(Box::new(CpuBackend::new(threads(&options.cpu))?))
    }
}
