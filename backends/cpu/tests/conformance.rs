//! The conformance suite on the CPU backend: every case of every op.

glmhal_conformance::backend_tests!(glmhal_cpu::Provider);
