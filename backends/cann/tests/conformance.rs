//! The conformance suite on the first Ascend device: skipped where no CANN
//! toolkit loads, run against the ACL simulator by `ci/cann-sim.sh`.

glmhal_conformance::backend_tests!(glmhal_cann::Provider);
