//! The backends compiled into this binary. Adding a backend is one line here.

use glmhal_hal::{BackendProvider, Registry};

/// Every compiled-in backend, in preference order.
pub fn registry() -> Registry {
    let providers: Vec<Box<dyn BackendProvider>> = vec![
        Box::new(glmhal_cpu::Provider),
        Box::new(glmhal_wgpu::Provider),
        Box::new(glmhal_cuda::PROVIDER),
        Box::new(glmhal_hip::PROVIDER),
        Box::new(glmhal_cann::Provider),
        Box::new(glmhal_opencl::Provider),
    ];
    Registry::new(providers)
}
