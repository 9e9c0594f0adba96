//! The backends compiled into this binary. Adding a backend is one line here.

use glmhal_hal::{Backend, BackendOptions, BackendProvider, DeviceSelector, Registry, Result};
use glmhal_testkit::delay::{Delayed, DELAY_VARIABLE};

/// Every compiled-in backend, in preference order, opening with the options
/// the environment asks for.
pub fn registry() -> Result<Registry> {
    registry_with(crate::options::from_environment()?)
}

/// Every compiled-in backend, opening with `options`; a slowdown planted by
/// `GLMHAL_INJECT_DELAY` wraps each backend opened, and stderr says so.
pub fn registry_with(options: BackendOptions) -> Result<Registry> {
    let providers: Vec<Box<dyn BackendProvider>> = vec![
        Box::new(glmhal_cpu::Provider),
        Box::new(glmhal_wgpu::Provider),
        Box::new(glmhal_cuda::PROVIDER),
        Box::new(glmhal_hip::PROVIDER),
        Box::new(glmhal_cann::Provider),
        Box::new(glmhal_opencl::Provider),
    ];
    let registry = Registry::new(providers).with_options(options);
    Ok(match crate::options::planted_delay()? {
        None => registry,
        Some((delay, text)) => registry.with_open_hook(Box::new(
            move |selector: &DeviceSelector, backend: Box<dyn Backend>| -> Box<dyn Backend> {
                eprintln!(
                    "warning: {DELAY_VARIABLE}={text}: {selector} waits {:?} after every {}",
                    delay.delay, delay.op
                );
                Box::new(Delayed::new(backend, delay))
            },
        )),
    })
}
