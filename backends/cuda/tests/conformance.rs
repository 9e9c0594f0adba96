//! The conformance suite on the first NVIDIA GPU: skipped where no driver
//! or device is found, unless `GLMHAL_REQUIRE_BACKENDS` names cuda.

glmhal_conformance::backend_tests!(glmhal_cuda::PROVIDER);
