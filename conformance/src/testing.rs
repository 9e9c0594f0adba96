//! Helpers behind [`crate::backend_tests!`]: the suite as `cargo test` cases.

use glmhal_hal::{Availability, BackendProvider, OpKind};

use crate::runner::Status;
use crate::suite::{run, Filter, Target, DEFAULT_SEED};

/// Environment variable listing backends whose absence fails the tests
/// (comma separated, e.g. `cpu,wgpu,opencl`). The CPU is always required.
pub const REQUIRE_ENV: &str = "GLMHAL_REQUIRE_BACKENDS";

/// Environment variable listing backends that must run every case and model
/// (no "unsupported"), so CI notices when coverage shrinks.
pub const REQUIRE_ALL_ENV: &str = "GLMHAL_REQUIRE_ALL_CASES";

fn listed(var: &str, name: &str) -> bool {
    std::env::var(var)
        .unwrap_or_default()
        .split(',')
        .any(|b| b.trim() == name)
}

/// Whether tests of `provider` run here: true when it is available; when it
/// is not, panics if it is required ([`REQUIRE_ENV`], or the CPU) and
/// otherwise says why it did not run and returns false.
pub fn should_run(provider: &dyn BackendProvider) -> bool {
    let name = provider.name();
    let Availability::Unavailable { detail, .. } = provider.probe() else {
        return true;
    };
    let required = name == "cpu" || listed(REQUIRE_ENV, name);
    assert!(
        !required,
        "{name} is required ({REQUIRE_ENV}) but unavailable: {detail}"
    );
    eprintln!("{name} not run: {detail}");
    false
}

/// Runs every case of `kind` on the provider's default device and panics
/// with the failing cases if any fails or errors. An unavailable backend
/// panics when it is required, and otherwise says why it did not run.
pub fn assert_op_conforms(provider: &dyn BackendProvider, kind: OpKind) {
    let name = provider.name();
    if !should_run(provider) {
        return;
    }
    let backend = match provider.open(None) {
        Ok(b) => b,
        Err(e) => panic!("{name} probed available but failed to open: {e}"),
    };
    let cases = Filter {
        ops: vec![kind],
        ..Filter::default()
    }
    .select();
    assert!(!cases.is_empty(), "no cases for {kind}");
    let targets = [Target {
        selector: name.to_string(),
        backend: backend.as_ref(),
    }];
    let results = run(&cases, &targets, DEFAULT_SEED, &mut |_| {});
    let bad: Vec<String> = results
        .iter()
        .filter(|r| matches!(r.outcome.status, Status::Fail | Status::Error))
        .map(|r| {
            format!(
                "{:?} {}: {}",
                r.outcome.status,
                r.case,
                r.outcome.detail.clone().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} {kind} cases failed on {name}:\n{}",
        bad.len(),
        results.len(),
        bad.join("\n")
    );
    let unsupported: Vec<String> = results
        .iter()
        .filter(|r| r.outcome.status == Status::Unsupported)
        .map(|r| {
            format!(
                "{}: {}",
                r.case,
                r.outcome.detail.clone().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        unsupported.is_empty() || !listed(REQUIRE_ALL_ENV, name),
        "{name} must run every case ({REQUIRE_ALL_ENV}) but reports {} {kind} case(s) unsupported:\n{}",
        unsupported.len(),
        unsupported.join("\n")
    );
    let unsupported = unsupported.len();
    eprintln!(
        "{name} {kind}: {} passed, {unsupported} unsupported",
        results.len() - unsupported
    );
}

/// Runs the built-in models on the provider's device against the reference
/// backend and panics on any disagreement.
pub fn assert_models_agree(provider: &dyn BackendProvider) {
    let name = provider.name();
    if !should_run(provider) {
        return;
    }
    for model in crate::model_check::builtin_models() {
        let expected = crate::model_check::expect(&model)
            .unwrap_or_else(|e| panic!("reference run of {}: {e}", model.name));
        let r = crate::model_check::check(name, &|| provider.open(None), &expected);
        if r.status == Status::Unsupported {
            assert!(
                !listed(REQUIRE_ALL_ENV, name),
                "{name} must run every model ({REQUIRE_ALL_ENV}): {}: {:?}",
                model.name,
                r.detail
            );
            eprintln!(
                "{name} {}: unsupported: {}",
                model.name,
                r.detail.unwrap_or_default()
            );
            continue;
        }
        assert_eq!(
            r.status,
            Status::Pass,
            "{} on {name}: {:?}",
            model.name,
            r.detail
        );
        eprintln!(
            "{name} {}: max error {:?}",
            model.name,
            r.max_abs_error.iter().cloned().fold(0.0f32, f32::max)
        );
    }
}

/// Instantiates the conformance suite for one backend: one `#[test]` per op.
///
/// ```text
/// glmhal_conformance::backend_tests!(glmhal_cpu::Provider);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($provider:expr) => {
        $crate::backend_tests!(@each $provider;
            get_rows GetRows, mat_mul MatMul, batched_mat_mul BatchedMatMul, rms_norm RmsNorm,
            layer_norm LayerNorm, rope Rope, attention Attention, softmax Softmax, swi_glu SwiGlu,
            silu Silu, gelu Gelu, add Add, mul Mul, scale Scale, cast Cast, quantize Quantize,
            kv_write KvWrite, argmax Argmax);
    };
    (@each $provider:expr; $($test:ident $kind:ident),* $(,)?) => {
        #[test]
        fn builtin_models_agree_with_the_reference() {
            $crate::testing::assert_models_agree(&$provider);
        }

        $(
            #[test]
            fn $test() {
                $crate::testing::assert_op_conforms(&$provider, $crate::hal::OpKind::$kind);
            }
        )*
    };
}
