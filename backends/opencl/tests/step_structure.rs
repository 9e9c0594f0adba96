//! A whole step on the OpenCL device (PoCL in CI): what it asks of the
//! device (the token ids and positions go up in one enqueued copy, the host
//! waits once for the result and the status words, at most 8 launches per
//! layer, kernels reading at least what the step must), and that the fused
//! launches of a step write exactly the bytes its calls write one by one.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_conformance::testing::open_for_test;
use glmhal_hal::DType;
use glmhal_model::synth::{synth, Preset, PRESETS};
use glmhal_model::{LayerOrder, LoadOptions, Model, SeqStep, StepOutput, Want, Workspace};

/// `preset` written with `dtype` weights and loaded on a fresh OpenCL device.
fn load(preset: &Preset, dtype: DType, tag: &str) -> Option<Model> {
    let backend = open_for_test(&glmhal_opencl::Provider)?;
    let dir = std::env::temp_dir().join(format!(
        "glmhal-opencl-{tag}-{}-{}",
        preset.name,
        std::process::id()
    ));
    synth(preset, &dir, DType::F32, 3).unwrap();
    let options = LoadOptions {
        weights: Some(dtype),
        ..LoadOptions::default()
    };
    let model = Model::load(&dir, backend, options).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    Some(model)
}

const PROMPT: [u32; 4] = [3, 5, 7, 11];

#[test]
fn a_decode_step_waits_once_copies_once_each_way_and_launches_few_kernels() {
    let Some(model) = load(&PRESETS[0], DType::F16, "structure") else {
        return;
    };
    let cache = model.new_cache(16, 1, DType::F32).unwrap();
    let mut ws = Workspace::default();
    let prefill = [SeqStep {
        slot: 0,
        start: 0,
        len: PROMPT.len(),
    }];
    model
        .step(&cache, &mut ws, &prefill, &PROMPT, Want::Greedy)
        .unwrap();
    let decode = [SeqStep {
        slot: 0,
        start: PROMPT.len(),
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
    // Per layer: qkv, rope with the cache writes, attention, o, post-norm
    // with add and norm, gate/up with SwiGLU, down, post-norm with add and
    // the next norm; around them the embedding, the first norm, the last
    // layer's unfused add, the kept rows, the final norm, the logits and
    // their argmax.
    let layers = model.config.layers as u64;
    assert!(step.launches <= 8 * layers + 7, "{step:?}");
}

/// Logits of a prompt step and a decode step, fused (`step`) or call by call
/// (`step_traced`).
fn logits(model: &Model, fused: bool) -> Vec<Vec<u32>> {
    let cache = model.new_cache(16, 1, DType::F32).unwrap();
    let mut ws = Workspace::default();
    let steps = [
        (
            SeqStep {
                slot: 0,
                start: 0,
                len: PROMPT.len(),
            },
            PROMPT.to_vec(),
        ),
        (
            SeqStep {
                slot: 0,
                start: PROMPT.len(),
                len: 1,
            },
            vec![13],
        ),
    ];
    steps
        .iter()
        .map(|(seq, tokens)| {
            let seqs = std::slice::from_ref(seq);
            let out = if fused {
                model.step(&cache, &mut ws, seqs, tokens, Want::AllLogits)
            } else {
                model.step_traced(&cache, seqs, tokens, Want::AllLogits, &mut |_| Ok(()))
            };
            match out.unwrap() {
                StepOutput::Logits(l) => l.iter().map(|v| v.to_bits()).collect(),
                other => panic!("{other:?}"),
            }
        })
        .collect()
}

#[test]
fn fused_launches_write_the_bytes_the_calls_write_one_by_one() {
    let glm = Preset {
        name: "tiny-glm",
        order: LayerOrder::Glm,
        ..PRESETS[0].clone()
    };
    for (preset, dtype) in [
        (PRESETS[0].clone(), DType::Q4_0),
        (PRESETS[0].clone(), DType::F32),
        (glm, DType::Q8_0),
    ] {
        let (Some(a), Some(b)) = (load(&preset, dtype, "fused"), load(&preset, dtype, "calls"))
        else {
            return;
        };
        let before = a.backend().counters().unwrap();
        let fused = logits(&a, true);
        let launches = a.backend().counters().unwrap().since(&before).launches;
        let calls_before = b.backend().counters().unwrap();
        let one_by_one = logits(&b, false);
        let calls = b
            .backend()
            .counters()
            .unwrap()
            .since(&calls_before)
            .launches;
        for (step, (f, c)) in fused.iter().zip(&one_by_one).enumerate() {
            let first = f.iter().zip(c).position(|(x, y)| x != y);
            assert!(
                first.is_none() && f.len() == c.len(),
                "{} {dtype}: step {step} logits differ first at {first:?}: {:?} fused, {:?} one by one",
                preset.name,
                first.map(|i| f32::from_bits(f[i])),
                first.map(|i| f32::from_bits(c[i])),
            );
        }
        assert!(
            launches < calls,
            "{} {dtype}: {launches} launches, {calls} unfused",
            preset.name
        );
    }
}
