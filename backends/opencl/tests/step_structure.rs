//! What one decode step asks of the OpenCL device (PoCL in CI): the token
//! ids and positions go up in one enqueued copy, the host waits once for
//! the result and the status words, and the kernels read at least what the
//! step must (weights once, the visible keys and values once).

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_conformance::testing::open_for_test;
use glmhal_hal::DType;
use glmhal_model::synth::{synth, PRESETS};
use glmhal_model::{LoadOptions, Model, SeqStep, Want, Workspace};

#[test]
fn a_decode_step_waits_once_and_copies_once_each_way() {
    let Some(backend) = open_for_test(&glmhal_opencl::Provider) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("glmhal-opencl-structure-{}", std::process::id()));
    synth(&PRESETS[0], &dir, DType::F16, 3).unwrap();
    let model = Model::load(&dir, backend, LoadOptions::default()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let cache = model.new_cache(16, 1, DType::F32).unwrap();
    let mut ws = Workspace::default();
    let prompt = [3u32, 5, 7, 11];
    let prefill = [SeqStep {
        slot: 0,
        start: 0,
        len: prompt.len(),
    }];
    model
        .step(&cache, &mut ws, &prefill, &prompt, Want::Greedy)
        .unwrap();
    let decode = [SeqStep {
        slot: 0,
        start: prompt.len(),
        len: 1,
    }];
    let before = model.backend().counters().unwrap();
    model
        .step(&cache, &mut ws, &decode, &[13], Want::Greedy)
        .unwrap();
    let step = model.backend().counters().unwrap().since(&before);
    assert_eq!(step.host_waits, 1, "{step:?}");
    assert_eq!(step.uploads, 1, "{step:?}");
    // The greedy token and the status words, read after one wait.
    assert_eq!(step.downloads, 2, "{step:?}");
    assert_eq!(step.download_bytes, 4 + 16, "{step:?}");
    let minimum = model.minimum_step_reads(&decode, DType::F32);
    assert!(step.bytes_read >= minimum, "{step:?} against {minimum}");
    assert!(step.launches >= model.config.layers as u64, "{step:?}");
}
