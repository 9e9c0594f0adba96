//! The conformance suite on the wgpu backend's best adapter.

glmhal_conformance::backend_tests!(glmhal_wgpu::Provider);
