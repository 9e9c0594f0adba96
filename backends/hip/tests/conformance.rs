//! The conformance suite on the first AMD GPU or Hygon DCU: skipped where no
//! runtime or device is found, unless `GLMHAL_REQUIRE_BACKENDS` names hip.

glmhal_conformance::backend_tests!(glmhal_hip::PROVIDER);
