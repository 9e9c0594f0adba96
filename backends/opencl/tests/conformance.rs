//! The conformance suite on the first OpenCL device (PoCL in CI).

glmhal_conformance::backend_tests!(glmhal_opencl::Provider);
