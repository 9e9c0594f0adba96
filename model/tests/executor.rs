//! Executor behaviour beyond the goldens: batched decode, memory planning and bad input.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::{Path, PathBuf};

use glmhal_hal::{BackendProvider, DType};
use glmhal_model::{LoadOptions, Model, SeqStep, StepOutput, Want, Workspace};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The error loading `dir` gives, as text.
fn load_error(dir: &Path) -> String {
    load(dir).err().expect("loading should fail").to_string()
}

fn load(dir: &Path) -> glmhal_hal::Result<Model> {
    Model::load(
        dir,
        glmhal_cpu::Provider
            .open(None, &glmhal_hal::BackendOptions::default())
            .unwrap(),
        LoadOptions::default(),
    )
}

fn logits(out: StepOutput) -> Vec<f32> {
    match out {
        StepOutput::Logits(l) => l,
        StepOutput::Tokens(_) => panic!("expected logits"),
    }
}

#[test]
fn a_batch_of_sequences_at_different_positions_matches_each_alone() {
    let m = load(&fixture("glm4-gqa4-tf5")).unwrap();
    let v = m.config.vocab;
    let a: Vec<u32> = (0..7).map(|i| (i * 13 % v) as u32).collect();
    let b: Vec<u32> = (0..3).map(|i| (i * 29 % v + 1) as u32).collect();
    let cache = m.new_cache(16, 2, DType::F32).unwrap();
    let mut ws = Workspace::default();
    // Prefill both sequences into their slots, then decode one token each in one batch.
    m.step(
        &cache,
        &mut ws,
        &[SeqStep {
            slot: 0,
            start: 0,
            len: 7,
        }],
        &a,
        Want::LastLogits,
    )
    .unwrap();
    m.step(
        &cache,
        &mut ws,
        &[SeqStep {
            slot: 1,
            start: 0,
            len: 3,
        }],
        &b,
        Want::LastLogits,
    )
    .unwrap();
    let batch = [
        SeqStep {
            slot: 0,
            start: 7,
            len: 1,
        },
        SeqStep {
            slot: 1,
            start: 3,
            len: 1,
        },
    ];
    let both = logits(
        m.step(&cache, &mut ws, &batch, &[5, 9], Want::LastLogits)
            .unwrap(),
    );
    // The same continuations computed from scratch, one sequence at a time.
    let mut a2 = a.clone();
    a2.push(5);
    let mut b2 = b.clone();
    b2.push(9);
    let alone_a = m.logits(&a2, DType::F32).unwrap();
    let alone_b = m.logits(&b2, DType::F32).unwrap();
    let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-4);
    assert!(close(&both[..v], &alone_a[7 * v..]));
    assert!(close(&both[v..], &alone_b[3 * v..]));
    // Greedy on the device returns only the token ids.
    let cache2 = m.new_cache(16, 1, DType::F32).unwrap();
    let ids = m
        .step(
            &cache2,
            &mut ws,
            &[SeqStep {
                slot: 0,
                start: 0,
                len: 8,
            }],
            &a2,
            Want::Greedy,
        )
        .unwrap();
    assert_eq!(
        ids,
        StepOutput::Tokens(vec![glmhal_model::sampler::argmax(&alone_a[7 * v..])])
    );
}

#[test]
fn activation_memory_is_planned_and_reused() {
    let m = load(&fixture("glm-gqa2-tf4")).unwrap();
    let cache = m.new_cache(64, 1, DType::F32).unwrap();
    let mut ws = Workspace::default();
    let prompt: Vec<u32> = (0..40).collect();
    m.step(
        &cache,
        &mut ws,
        &[SeqStep {
            slot: 0,
            start: 0,
            len: 40,
        }],
        &prompt,
        Want::AllLogits,
    )
    .unwrap();
    assert!(ws.planned_peak > 0);
    assert!(
        ws.planned_peak * 3 < ws.unplanned,
        "peak {} vs {} unplanned",
        ws.planned_peak,
        ws.unplanned
    );
}

#[test]
fn bad_steps_are_clear_errors() {
    let m = load(&fixture("glm-gqa2-tf4")).unwrap();
    let cache = m.new_cache(8, 1, DType::F32).unwrap();
    let mut ws = Workspace::default();
    let step = |seqs: &[SeqStep], toks: &[u32]| {
        let mut ws = Workspace::default();
        m.step(&cache, &mut ws, seqs, toks, Want::LastLogits)
            .unwrap_err()
            .to_string()
    };
    assert!(step(
        &[SeqStep {
            slot: 0,
            start: 0,
            len: 1
        }],
        &[128]
    )
    .contains("token id 128"));
    assert!(step(
        &[SeqStep {
            slot: 0,
            start: 0,
            len: 9
        }],
        &[1; 9]
    )
    .contains("do not fit the context"));
    assert!(step(
        &[SeqStep {
            slot: 1,
            start: 0,
            len: 1
        }],
        &[1]
    )
    .contains("slot"));
    assert!(step(
        &[SeqStep {
            slot: 0,
            start: 0,
            len: 2
        }],
        &[1]
    )
    .contains("tokens"));
    assert!(m.step(&cache, &mut ws, &[], &[], Want::LastLogits).is_err());
}

fn replace_bytes(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = hay.windows(from.len()).position(|w| w == from).unwrap();
    let mut out = hay.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

/// Copies a fixture to a scratch directory so it can be damaged.
fn scratch_copy(name: &str, tag: &str) -> PathBuf {
    let dst = std::env::temp_dir().join(format!("glmhal-bad-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture(name).join(f), dst.join(f)).unwrap();
    }
    dst
}

#[test]
fn broken_checkpoints_are_errors_that_name_the_problem() {
    // Missing directory and missing files.
    assert!(load(Path::new("/nonexistent/model"))
        .err()
        .unwrap()
        .to_string()
        .contains("no such model directory"));
    let d = scratch_copy("glm-gqa2-tf4", "nofile");
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    assert!(load_error(&d).contains("no .safetensors files"));
    std::fs::remove_file(d.join("config.json")).unwrap();
    assert!(load_error(&d).contains("config.json"));

    // A config that disagrees with the tensors.
    let d = scratch_copy("glm-gqa2-tf4", "shape");
    let cfg = std::fs::read_to_string(d.join("config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 96", "\"intermediate_size\": 80");
    std::fs::write(d.join("config.json"), cfg).unwrap();
    let e = load_error(&d);
    assert!(
        e.contains("gate_up_proj") && e.contains("config implies"),
        "{e}"
    );

    // A truncated weights file.
    let d = scratch_copy("glm-gqa2-tf4", "trunc");
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_error(&d).contains("runs past the end"));

    // A missing tensor.
    let d = scratch_copy("glm-gqa2-tf4", "missing");
    let renamed = replace_bytes(&bytes, b"model.norm.weight", b"model.gone.weight");
    std::fs::write(d.join("model.safetensors"), renamed).unwrap();
    assert!(load_error(&d).contains("missing tensor `model.norm.weight`"));

    // NaN in a weight.
    let d = scratch_copy("glm-gqa2-tf4", "nan");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = header["model.norm.weight"]["data_offsets"][0]
        .as_u64()
        .unwrap() as usize
        + 8
        + header_len;
    let mut nan = bytes.clone();
    nan[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(d.join("model.safetensors"), nan).unwrap();
    let e = load_error(&d);
    assert!(e.contains("final_norm") && e.contains("NaN"), "{e}");

    // A dtype weights cannot have.
    let e = Model::load(
        &fixture("glm-gqa2-tf4"),
        glmhal_cpu::Provider
            .open(None, &glmhal_hal::BackendOptions::default())
            .unwrap(),
        LoadOptions {
            weights: Some(DType::I32),
            ..Default::default()
        },
    );
    assert!(e
        .err()
        .unwrap()
        .to_string()
        .contains("cannot be stored as i32"));
}

#[test]
fn sharded_checkpoints_load_like_single_files() {
    use glmhal_model::safetensors::{SafetensorsFile, SafetensorsWriter};
    use std::collections::BTreeMap;
    let src = fixture("glm4-mqa-theta5e6");
    let dst = std::env::temp_dir().join(format!("glmhal-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join("config.json"), dst.join("config.json")).unwrap();
    let f = SafetensorsFile::open(&src.join("model.safetensors")).unwrap();
    let names: Vec<String> = f.names().map(String::from).collect();
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", shard + 1);
        let decl: Vec<_> = part
            .iter()
            .map(|n| {
                let t = f.tensor(n).unwrap();
                (n.clone(), t.dtype, t.shape.to_vec())
            })
            .collect();
        let mut w = SafetensorsWriter::create(&dst.join(&file), &decl, &BTreeMap::new()).unwrap();
        for n in part {
            w.write(n, f.tensor(n).unwrap().bytes).unwrap();
            weight_map.insert(n.clone(), serde_json::json!(file));
        }
        w.finish().unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dst.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let tokens = [3u32, 1, 4, 1, 5, 9, 2, 6];
    let a = load(&src).unwrap().logits(&tokens, DType::F32).unwrap();
    let b = load(&dst).unwrap().logits(&tokens, DType::F32).unwrap();
    assert_eq!(a, b);
    std::fs::remove_dir_all(dst).ok();
}

#[test]
fn generation_stops_on_any_eos_and_q4_0_weights_run() {
    use glmhal_model::{generate, GenerateOptions, Sampling};
    let g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("glm-gqa2-tf4").join("golden.json")).unwrap(),
    )
    .unwrap();
    let prompt: Vec<u32> = g["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let greedy: Vec<u32> = g["greedy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let m = load(&fixture("glm-gqa2-tf4")).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 12,
        sampling: Sampling::default(),
        stop: vec![9999, greedy[3]],
        context: Some(64),
        cache_dtype: DType::F32,
        beyond_context: false,
    };
    let out = generate(&m, &prompt, &opts, &mut |_| {}).unwrap();
    let first = greedy.iter().position(|t| *t == greedy[3]).unwrap();
    assert_eq!(out.tokens, greedy[..=first]);
    assert!(out.stopped);
    let q4 = Model::load(
        &fixture("glm-gqa2-tf4"),
        glmhal_cpu::Provider
            .open(None, &glmhal_hal::BackendOptions::default())
            .unwrap(),
        LoadOptions {
            weights: Some(DType::Q4_0),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(q4.weight_bytes() * 4 < m.weight_bytes());
    let logits = q4.logits(&prompt, DType::F16).unwrap();
    assert!(logits.iter().all(|v| v.is_finite()));
}
