//! Helpers behind [`crate::backend_tests!`]: the suite as `cargo test` cases.

use std::sync::OnceLock;

use glmhal_hal::{
    Availability, BackendOptions, BackendProvider, DType, HalError, Op, OpCall, OpKind, TensorDesc,
    TensorRef,
};

use crate::runner::Status;
use crate::suite::{run, Filter, Target, DEFAULT_SEED};

/// Environment variable listing backends whose absence fails the tests
/// (comma separated, e.g. `cpu,wgpu,opencl`). The CPU is always required.
pub const REQUIRE_ENV: &str = "GLMHAL_REQUIRE_BACKENDS";

/// Environment variable listing backends that must run every case and model
/// (no "unsupported"), so CI notices when coverage shrinks.
pub const REQUIRE_ALL_ENV: &str = "GLMHAL_REQUIRE_ALL_CASES";

/// The options tests open backends with: the `GLMHAL_*` variables, mapped
/// as the CLI maps them, so CI runs the same suite under each setting (every
/// CPU instruction-set level, int16 activations). A test harness has no
/// command line: its environment is how the CI script speaks to it, the
/// documented exception to "nothing below the CLI reads the environment".
/// A variable that does not parse fails the test naming it.
pub fn test_options() -> &'static BackendOptions {
    static OPTIONS: OnceLock<BackendOptions> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        // Environment: the test harness's input (see above).
        BackendOptions::from_variables(|var| std::env::var(var).ok())
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

fn listed(var: &str, name: &str) -> bool {
    // Environment: the test harness's own settings, as for `test_options`.
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
    let Availability::Unavailable { detail, .. } = provider.probe(test_options()) else {
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
    let backend = match provider.open(None, test_options()) {
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
    let results = run(&cases, &targets, &[DEFAULT_SEED], &mut |_| {}).results;
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
        let r = crate::model_check::check(name, &|| provider.open(None, test_options()), &expected);
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
            "{name} {}: logits within {:?} of their bound, max |logit error| {:?}",
            model.name,
            r.logit_bound_ratio,
            r.max_abs_error.iter().cloned().fold(0.0f32, f32::max)
        );
    }
}

/// Largest |logit − transformers| allowed on the golden fixtures (f32).
pub const GOLDEN_MAX_ABS_ERROR: f32 = 1e-4;

/// Runs the transformers golden fixtures on the provider's device: f32
/// prefill logits within [`GOLDEN_MAX_ABS_ERROR`] of transformers' and the
/// same greedy continuation through the KV cache.
pub fn assert_goldens_agree(provider: &dyn BackendProvider) {
    use glmhal_model::golden::{fixture_dir, Golden, FIXTURES};
    use glmhal_model::{generate, GenerateOptions, LoadOptions, Model, Sampling};
    let name = provider.name();
    if !should_run(provider) {
        return;
    }
    for fixture in FIXTURES {
        let golden = Golden::load(&fixture_dir(fixture))
            .unwrap_or_else(|e| panic!("reading fixture {fixture}: {e}"));
        let backend = provider
            .open(None, test_options())
            .unwrap_or_else(|e| panic!("opening {name}: {e}"));
        let model = Model::load(&fixture_dir(fixture), backend, LoadOptions::default())
            .unwrap_or_else(|e| panic!("{fixture} on {name}: {e}"));
        let logits = model
            .logits(&golden.prompt, glmhal_hal::DType::F32)
            .unwrap_or_else(|e| panic!("{fixture} on {name}: {e}"));
        assert_eq!(logits.len(), golden.logits.len(), "{fixture} on {name}");
        let err = logits
            .iter()
            .zip(&golden.logits)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{name} {fixture}: max |logit - transformers| = {err:.2e}");
        assert!(
            err <= GOLDEN_MAX_ABS_ERROR,
            "{fixture} on {name}: max |logit - transformers| = {err}"
        );
        let options = GenerateOptions {
            max_new_tokens: golden.greedy.len(),
            sampling: Sampling::default(),
            stop: vec![],
            context: None,
            cache_dtype: glmhal_hal::DType::F32,
            beyond_context: false,
        };
        let out = generate(&model, &golden.prompt, &options, &mut |_| {})
            .unwrap_or_else(|e| panic!("{fixture} on {name}: {e}"));
        assert_eq!(
            out.tokens, golden.greedy,
            "{fixture} on {name}: greedy tokens"
        );
    }
}

/// The provider's default device when tests of it run here ([`should_run`]);
/// `None` when it is absent and not required. Panics if opening fails.
pub fn open_for_test(provider: &dyn BackendProvider) -> Option<Box<dyn glmhal_hal::Backend>> {
    if !should_run(provider) {
        return None;
    }
    Some(
        provider
            .open(None, test_options())
            .unwrap_or_else(|e| panic!("opening {}: {e}", provider.name())),
    )
}

/// Probing never panics; a backend that is unavailable says why in words a
/// user can act on, and opening it fails with the same words and the device
/// asked for; an available one lists at least one device.
pub fn assert_probe_explains_itself(provider: &dyn BackendProvider) {
    match provider.probe(test_options()) {
        Availability::Unavailable { detail, .. } => {
            assert!(detail.len() > 10, "{}: {detail}", provider.name());
            let err = provider
                .open(Some(0), test_options())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let device = format!("{}:0", provider.name());
            assert!(err.contains(&device) && err.contains(&detail), "{err}");
        }
        Availability::Available { devices } => assert!(!devices.is_empty()),
    }
}

/// Calls the contract refuses never reach the backend's kernels: a wrong
/// dtype is a `DType` error and an output overlapping its input an
/// `InvalidArgument` error from `execute` and `execute_step`, and
/// `supports` gives the reason.
pub fn assert_malformed_calls_are_refused(provider: &dyn BackendProvider) {
    let Some(b) = open_for_test(provider) else {
        return;
    };
    let name = provider.name();
    let buf = b
        .upload_new(&[0u8; 64])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let f32s = TensorDesc::contiguous(DType::F32, &[4]);
    let ints = TensorDesc::contiguous(DType::I32, &[4]);
    let at = |desc: &TensorDesc, offset: usize| TensorRef {
        buffer: &buf,
        desc: TensorDesc {
            offset,
            ..desc.clone()
        },
    };
    let refused = |what: &str, result: glmhal_hal::Result<()>| match result {
        Err(HalError::InvalidArgument { .. } | HalError::DType { .. }) => {}
        other => panic!("{name}: {what} was not refused by the checks: {other:?}"),
    };
    // silu of i32 values: a dtype the catalogue does not allow.
    let wrong_dtype = (vec![at(&ints, 0)], vec![at(&f32s, 32)]);
    refused(
        "a wrong dtype",
        b.execute(&Op::Silu, &wrong_dtype.0, &wrong_dtype.1),
    );
    assert!(
        !b.supports(
            &Op::Silu,
            std::slice::from_ref(&ints),
            std::slice::from_ref(&f32s)
        )
        .is_supported(),
        "{name}: supports accepted a wrong dtype"
    );
    // An output overlapping its input.
    let overlapping = (vec![at(&f32s, 0)], vec![at(&f32s, 8)]);
    refused(
        "an output overlapping its input",
        b.execute(&Op::Silu, &overlapping.0, &overlapping.1),
    );
    let step = [OpCall {
        op: Op::Silu,
        inputs: overlapping.0.iter().cloned().collect(),
        outputs: overlapping.1.iter().cloned().collect(),
    }];
    refused("an overlapping call in a step", b.execute_step(&step));
}

/// Uploads and downloads at unaligned offsets touch exactly their bytes,
/// and a copy past the end of a buffer is an error.
pub fn assert_copies_keep_neighbouring_bytes(provider: &dyn BackendProvider) {
    let Some(b) = open_for_test(provider) else {
        return;
    };
    let name = provider.name();
    let buf = b
        .upload_new(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    b.upload(&buf, 3, &[30, 40, 50, 60, 70])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut all = [0u8; 11];
    b.download(&buf, 0, &mut all)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(all, [1, 2, 3, 30, 40, 50, 60, 70, 9, 10, 11], "{name}");
    let mut mid = [0u8; 3];
    b.download(&buf, 5, &mut mid)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(mid, [50, 60, 70], "{name}");
    assert!(
        b.upload(&buf, 9, &[0; 3]).is_err(),
        "{name}: upload past the end"
    );
    assert!(
        b.download(&buf, 10, &mut mid).is_err(),
        "{name}: download past the end"
    );
}

/// A get_rows id outside the table and a kv_write position outside the
/// cache are errors naming the op and the value, at the latest at the next
/// wait, and the device goes on working afterwards.
pub fn assert_out_of_range_indices_are_reported(provider: &dyn BackendProvider) {
    use glmhal_hal::{DType, Op, TensorDesc};
    let Some(b) = open_for_test(provider) else {
        return;
    };
    let name = provider.name();
    let ints = |v: &[i32]| v.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>();
    let upload = |bytes: &[u8]| {
        b.upload_new(bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let table = upload(&[0u8; 128]);
    let ids = upload(&ints(&[1, 999, 2]));
    let ids_desc = TensorDesc::contiguous(DType::I32, &[3]);
    let out = upload(&[0u8; 96]);
    let err = b
        .execute(
            &Op::GetRows,
            &[
                table.view(TensorDesc::contiguous(DType::F32, &[4, 8])),
                ids.view(ids_desc.clone()),
            ],
            &[out.view(TensorDesc::contiguous(DType::F32, &[3, 8]))],
        )
        .and_then(|()| b.synchronize())
        .expect_err("an id outside the table was accepted")
        .to_string();
    assert!(
        err.contains("get_rows") && err.contains("999"),
        "{name}: {err}"
    );
    b.synchronize()
        .unwrap_or_else(|e| panic!("{name}: the error was reported twice: {e}"));

    let positions = upload(&ints(&[0, 1, -5]));
    let mut bytes = [0u8; 128];
    let err = b
        .execute(
            &Op::KvWrite,
            &[
                out.view(TensorDesc::contiguous(DType::F32, &[3, 1, 8])),
                positions.view(ids_desc),
            ],
            &[table.view(TensorDesc::contiguous(DType::F32, &[4, 1, 8]))],
        )
        .and_then(|()| b.download(&table, 0, &mut bytes))
        .expect_err("a position outside the cache was accepted")
        .to_string();
    assert!(
        err.contains("kv_write") && err.contains("-5"),
        "{name}: {err}"
    );
    b.download(&table, 0, &mut bytes)
        .unwrap_or_else(|e| panic!("{name}: the device stopped working: {e}"));
}

/// An expert id outside the experts (mat_mul_id) and a NaN router score
/// (moe_select) are errors naming the op and the id or row, at the latest
/// at the next wait, and the device keeps working.
pub fn assert_bad_routing_is_reported(provider: &dyn BackendProvider) {
    use glmhal_hal::{DType, HalError, Op, Support, TensorDesc};
    let Some(b) = open_for_test(provider) else {
        return;
    };
    let name = provider.name();
    let upload = |bytes: Vec<u8>| {
        b.upload_new(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let floats = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let f32s = |shape: &[usize]| TensorDesc::contiguous(DType::F32, shape);
    let i32s = |shape: &[usize]| TensorDesc::contiguous(DType::I32, shape);
    let (x_d, w_d, ids_d, out_d) = (
        f32s(&[2, 1, 32]),
        f32s(&[4, 8, 32]),
        i32s(&[2, 2]),
        f32s(&[2, 2, 8]),
    );
    let product = Op::MatMulId;
    if let Support::Unsupported(why) = b.supports(
        &product,
        &[x_d.clone(), w_d.clone(), ids_d.clone()],
        std::slice::from_ref(&out_d),
    ) {
        eprintln!("{name}: no mat_mul_id ({why})");
        return;
    }
    let x = upload(floats(&[0.5; 64]));
    let w = upload(floats(&[0.25; 4 * 8 * 32]));
    let ids = upload(
        [0i32, 1, 9, 3]
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect(),
    );
    let out = upload(vec![0u8; 4 * 32]);
    let err = b
        .execute(
            &product,
            &[x.view(x_d), w.view(w_d), ids.view(ids_d.clone())],
            &[out.view(out_d)],
        )
        .and_then(|()| b.synchronize())
        .expect_err("an expert id outside the experts was accepted")
        .to_string();
    assert!(
        err.contains("mat_mul_id") && err.contains('9'),
        "{name}: {err}"
    );
    b.synchronize()
        .unwrap_or_else(|e| panic!("{name}: the error was reported twice: {e}"));

    let select = Op::MoeSelect {
        top_k: 2,
        n_group: 1,
        topk_group: 1,
    };
    let mut logits = vec![0.5f32; 3 * 8];
    logits[8 + 5] = f32::NAN;
    let logits = upload(floats(&logits));
    let bias = upload(floats(&[0.0; 8]));
    let chosen = upload(vec![0u8; 3 * 2 * 4]);
    let got = b
        .execute(
            &select,
            &[logits.view(f32s(&[3, 8])), bias.view(f32s(&[8]))],
            &[chosen.view(i32s(&[3, 2]))],
        )
        .and_then(|()| b.synchronize());
    match got {
        Err(HalError::NonFinite { row: 1, op, .. }) if op == "moe_select" => {}
        other => panic!("{name}: moe_select over a NaN score: {other:?}"),
    }
    b.synchronize()
        .unwrap_or_else(|e| panic!("{name}: the device stopped working: {e}"));
}

/// argmax over rows holding a NaN, an infinity or a negative infinity is an
/// error naming the row ([`glmhal_hal::HalError::NonFinite`]), at the latest
/// at the next wait, and finite rows afterwards work as before.
pub fn assert_non_finite_rows_are_reported(provider: &dyn BackendProvider) {
    use glmhal_hal::{DType, HalError, Op, TensorDesc};
    let Some(b) = open_for_test(provider) else {
        return;
    };
    let name = provider.name();
    let (rows, cols) = (3usize, 300usize);
    let argmax = |values: &[f32]| {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let x = b
            .upload_new(&bytes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = b
            .upload_new(&[0u8; 12])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut ids = [0u8; 12];
        b.execute(
            &Op::Argmax,
            &[x.view(TensorDesc::contiguous(DType::F32, &[rows, cols]))],
            &[out.view(TensorDesc::contiguous(DType::I32, &[rows]))],
        )
        .and_then(|()| b.download(&out, 0, &mut ids))
        .map(|()| {
            ids.chunks_exact(4)
                .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .collect::<Vec<i32>>()
        })
    };
    let finite: Vec<f32> = (0..rows * cols).map(|i| ((i * 7) % 31) as f32).collect();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut values = finite.clone();
        // Late in row 1, where no thread of a 256-wide group starts.
        values[cols + 290] = bad;
        match argmax(&values) {
            Err(HalError::NonFinite { row: 1, op, .. }) if op == "argmax" => {}
            other => panic!("{name}: argmax over a row holding {bad}: {other:?}"),
        }
        let ids = argmax(&finite)
            .unwrap_or_else(|e| panic!("{name}: finite rows after a non-finite one: {e}"));
        assert_eq!(ids, [22, 1, 11], "{name}: argmax after a non-finite row");
    }
}

/// Where a backend counts its work, the counts follow it: an upload and a
/// download are counted with their bytes, a download waits, a product is a
/// launch or a library call reading at least its operands.
pub fn assert_counters_follow_the_work(provider: &dyn BackendProvider) {
    use glmhal_hal::{DType, Op, TensorDesc};
    let Some(b) = open_for_test(provider) else {
        return;
    };
    let name = provider.name();
    let Some(start) = b.counters() else {
        eprintln!("{name}: does not count its work");
        return;
    };
    let (m, k, n) = (1usize, 64usize, 32usize);
    let floats = |len: usize| -> Vec<u8> {
        (0..len)
            .flat_map(|i| ((i % 7) as f32 * 0.25).to_le_bytes())
            .collect()
    };
    let x = b
        .upload_new(&floats(m * k))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let w = b
        .upload_new(&floats(n * k))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let y = b.alloc(4 * m * n).unwrap_or_else(|e| panic!("{name}: {e}"));
    let uploaded = b.counters().map(|c| c.since(&start)).unwrap_or_default();
    assert_eq!(uploaded.uploads, 2, "{name}: {uploaded:?}");
    assert_eq!(uploaded.upload_bytes, 4 * (m * k + n * k) as u64, "{name}");
    let ins = [
        x.view(TensorDesc::contiguous(DType::F32, &[m, k])),
        w.view(TensorDesc::contiguous(DType::F32, &[n, k])),
    ];
    let outs = [y.view(TensorDesc::contiguous(DType::F32, &[m, n]))];
    let before = b.counters().unwrap_or_default();
    b.execute(&Op::MatMul { bias: false }, &ins, &outs)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let product = b.counters().unwrap_or_default().since(&before);
    assert!(
        product.launches + product.library_calls >= 1,
        "{name}: {product:?}"
    );
    assert!(
        product.bytes_read >= 4 * (m * k + n * k) as u64,
        "{name}: {product:?}"
    );
    let before = b.counters().unwrap_or_default();
    let mut out = vec![0u8; 4 * m * n];
    b.download(&y, 0, &mut out)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let read = b.counters().unwrap_or_default().since(&before);
    assert!(read.host_waits >= 1, "{name}: {read:?}");
    assert!(
        read.downloads >= 1 && read.download_bytes >= out.len() as u64,
        "{name}: {read:?}"
    );
    assert_eq!(read.launches + read.library_calls, 0, "{name}: {read:?}");
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
            kv_write KvWrite, argmax Argmax, mat_mul_id MatMulId, moe_select MoeSelect,
            moe_weights MoeWeights);
    };
    (@each $provider:expr; $($test:ident $kind:ident),* $(,)?) => {
        #[test]
        fn builtin_models_agree_with_the_reference() {
            $crate::testing::assert_models_agree(&$provider);
        }

        #[test]
        fn transformers_goldens_agree() {
            $crate::testing::assert_goldens_agree(&$provider);
        }

        #[test]
        fn probe_explains_itself() {
            $crate::testing::assert_probe_explains_itself(&$provider);
        }

        #[test]
        fn malformed_calls_are_refused() {
            $crate::testing::assert_malformed_calls_are_refused(&$provider);
        }

        #[test]
        fn copies_keep_neighbouring_bytes() {
            $crate::testing::assert_copies_keep_neighbouring_bytes(&$provider);
        }

        #[test]
        fn non_finite_rows_are_reported() {
            $crate::testing::assert_non_finite_rows_are_reported(&$provider);
        }

        #[test]
        fn counters_follow_the_work() {
            $crate::testing::assert_counters_follow_the_work(&$provider);
        }

        #[test]
        fn bad_routing_is_reported() {
            $crate::testing::assert_bad_routing_is_reported(&$provider);
        }

        #[test]
        fn out_of_range_indices_are_reported() {
            $crate::testing::assert_out_of_range_indices_are_reported(&$provider);
        }

        $(
            #[test]
            fn $test() {
                $crate::testing::assert_op_conforms(&$provider, $crate::hal::OpKind::$kind);
            }
        )*
    };
}
