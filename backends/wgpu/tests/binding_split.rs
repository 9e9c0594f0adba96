//! Weights and tables larger than one storage binding are split across
//! launches. The adapter's limit (128 MiB on lavapipe) is lowered so the
//! conformance cases and the built-in models cross it.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_conformance::runner::Status;
use glmhal_conformance::suite::{run, Filter, Target, DEFAULT_SEED};
use glmhal_conformance::testing::should_run;
use glmhal_hal::{Backend, OpKind};
use glmhal_wgpu::{open_with, Provider, WgpuOptions};

const CAP: u64 = 4096;

fn capped(cap: u64) -> Option<Box<dyn Backend>> {
    if !should_run(&Provider) {
        return None;
    }
    let options = WgpuOptions {
        max_binding: Some(cap),
        ..WgpuOptions::default()
    };
    Some(Box::new(open_with(None, &options).unwrap()))
}

#[test]
fn mat_mul_weights_and_get_rows_tables_split_across_bindings() {
    let Some(backend) = capped(CAP) else { return };
    let cases = Filter {
        ops: vec![OpKind::MatMul, OpKind::GetRows],
        ..Filter::default()
    }
    .select();
    let targets = [Target {
        selector: "wgpu-capped".into(),
        backend: backend.as_ref(),
    }];
    let results = run(&cases, &targets, &[DEFAULT_SEED], &mut |_| {}).results;
    let mut split_passed = 0;
    for (case, r) in cases.iter().zip(&results) {
        let weight = &case.inputs[usize::from(case.kind() == OpKind::MatMul)].desc;
        let split = weight.byte_range().len() as u64 > CAP;
        match r.outcome.status {
            Status::Pass if split => split_passed += 1,
            Status::Pass => {}
            // Too big for the lowered limit: activations, or a transposed
            // weight whose single row (a strided column) spans the whole tensor.
            Status::Unsupported => {
                let detail = r.outcome.detail.clone().unwrap_or_default();
                assert!(
                    !detail.contains(&weight.describe()) || detail.contains("single row"),
                    "{}: the weight was not split: {detail}",
                    case.id
                );
            }
            _ => panic!("{}: {:?}", case.id, r.outcome),
        }
    }
    assert!(
        split_passed >= 20,
        "only {split_passed} cases needed and passed a split"
    );
}

#[test]
fn models_agree_with_embedding_and_output_tables_split() {
    // 64 KiB: the tiny models' 128 KiB embedding and output tables split, their activations do not.
    let cap = 64 << 10;
    let Some(_) = capped(cap) else { return };
    for model in glmhal_conformance::model_check::builtin_models() {
        let expected = glmhal_conformance::model_check::expect(&model).unwrap();
        let open = || -> glmhal_hal::Result<Box<dyn Backend>> {
            let options = WgpuOptions {
                max_binding: Some(cap),
                ..WgpuOptions::default()
            };
            Ok(Box::new(open_with(None, &options)?))
        };
        let r = glmhal_conformance::model_check::check("wgpu-capped", &open, &expected);
        assert_eq!(r.status, Status::Pass, "{}: {:?}", model.name, r.detail);
        assert!(r.greedy_match, "{}", model.name);
    }
}
