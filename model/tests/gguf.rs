//! GGUF: the golden fixtures written as GGUF and read back (f32 logits
//! identical to the safetensors path, Q8_0/Q4_0 keep the greedy top-1), the
//! stored tokenizer, K-quant decoding against ggml's reference values, and
//! every malformed header field an error naming it, never a panic.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::{Path, PathBuf};

use glmhal_hal::{BackendProvider, DType, Rng};
use glmhal_model::checkpoint::Checkpoint;
use glmhal_model::gguf::{parse, GgmlType, GgufFile};
use glmhal_model::gguf_export::export;
use glmhal_model::gguf_write::{write, Meta, TensorSpec};
use glmhal_model::tokenizer::{synthetic_tokenizer_json, Tokenizer};
use glmhal_model::{LoadOptions, Model};

const FIXTURES: [&str; 6] = [
    "glm-gqa2-tf4",
    "glm4-gqa4-tf5",
    "glm-mha-chatglm",
    "glm4-mqa-theta5e6",
    "glm4moe-grouped-qknorm",
    "glm4moe-flat-tf4",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("glmhal-gguf-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn load(path: &Path) -> Model {
    let backend = glmhal_cpu::Provider
        .open(None, &glmhal_hal::BackendOptions::default())
        .unwrap();
    Model::load(path, backend, LoadOptions::default()).unwrap()
}

fn prompt(name: &str) -> Vec<u32> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap())
            .unwrap();
    json["prompt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Gap between the best and second-best logit of each row.
fn margins(logits: &[f32], vocab: usize) -> Vec<f32> {
    logits
        .chunks_exact(vocab)
        .zip(argmax_rows(logits, vocab))
        .map(|(row, best)| {
            let second = row
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != best)
                .fold(f32::MIN, |m, (_, v)| m.max(*v));
            row[best] - second
        })
        .collect()
}

fn argmax_rows(logits: &[f32], vocab: usize) -> Vec<usize> {
    logits
        .chunks_exact(vocab)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, v)| if *v > b.1 { (i, *v) } else { b },
                )
                .0
        })
        .collect()
}

#[test]
fn fixtures_round_trip_through_gguf() {
    let dir = scratch("round-trip");
    for name in FIXTURES {
        let source = Checkpoint::open(&fixture(name)).unwrap();
        let vocab = source.config.vocab;
        let tokens = prompt(name);
        let reference = load(&fixture(name)).logits(&tokens, DType::F32).unwrap();
        let f32_file = dir.join(format!("{name}-f32.gguf"));
        export(&source, &f32_file, DType::F32, name).unwrap();
        let read = Checkpoint::open(&f32_file).unwrap();
        let mut expected = source.config.clone();
        expected.naming = glmhal_model::Naming::Gguf;
        // The next-token-prediction layer is not written.
        if let Some(moe) = expected.moe.as_mut() {
            moe.mtp_layers = 0;
        }
        assert_eq!(read.config, expected, "{name}: config");
        let got = load(&f32_file).logits(&tokens, DType::F32).unwrap();
        assert_eq!(got, reference, "{name}: f32 GGUF logits differ");
        let top = argmax_rows(&reference, vocab);
        let gaps = margins(&reference, vocab);
        for dtype in [DType::Q8_0, DType::Q4_0] {
            let file = dir.join(format!("{name}-{dtype}.gguf"));
            export(&source, &file, dtype, name).unwrap();
            let g = GgufFile::open(&file).unwrap();
            let embed = g.info("token_embd.weight").unwrap();
            assert_eq!(
                embed.ty,
                GgmlType::of(dtype).unwrap(),
                "{name}: {dtype} embedding"
            );
            let q = load(&file).logits(&tokens, DType::F32).unwrap();
            // The blocks are used as stored: the same as quantizing at load.
            let backend = glmhal_cpu::Provider
                .open(None, &glmhal_hal::BackendOptions::default())
                .unwrap();
            let at_load = Model::load(
                &fixture(name),
                backend,
                LoadOptions {
                    weights: Some(dtype),
                    ..Default::default()
                },
            )
            .unwrap()
            .logits(&tokens, DType::F32)
            .unwrap();
            assert_eq!(
                q, at_load,
                "{name}: {dtype} GGUF differs from quantizing at load"
            );
            // Wherever the f32 winner leads by more than twice the error, it still wins.
            let err = q
                .iter()
                .zip(&reference)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            let got = argmax_rows(&q, vocab);
            for (p, gap) in gaps.iter().enumerate() {
                if *gap > 2.0 * err {
                    assert_eq!(
                        got[p], top[p],
                        "{name} {dtype}: position {p} (margin {gap}, error {err})"
                    );
                }
            }
            let agree = got.iter().zip(&top).filter(|(a, b)| a == b).count();
            eprintln!(
                "{name} {dtype}: top-1 agreement {agree}/{}, max error {err:.3e}",
                top.len()
            );
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn projections_stored_back_to_back_are_fused_in_place() {
    let dir = scratch("fused-in-place");
    // GLM-4 files store q, k and v apart (ChatGLM ones store them fused).
    for name in ["glm4-gqa4-tf5", "glm4-mqa-theta5e6"] {
        let file = dir.join(format!("{name}.gguf"));
        export(
            &Checkpoint::open(&fixture(name)).unwrap(),
            &file,
            DType::F16,
            name,
        )
        .unwrap();
        let checkpoint = Checkpoint::open(&file).unwrap();
        let g = GgufFile::open(&file).unwrap();
        let fused: Vec<_> = checkpoint
            .weights()
            .unwrap()
            .into_iter()
            .filter(|w| w.parts.len() > 1)
            .collect();
        assert!(!fused.is_empty(), "{name}: no fused weight");
        for source in fused {
            let w = checkpoint.read(&source).unwrap();
            // The parts' bytes in order, as the copying path would assemble them.
            let expected: Vec<u8> = source
                .parts
                .iter()
                .flat_map(|(part, _)| g.bytes(g.info(part).unwrap()).to_vec())
                .collect();
            assert_eq!(&*w.bytes, &expected[..], "{name}: {}", source.name);
            let (_, range) = w.shared.as_ref().unwrap_or_else(|| {
                panic!("{name}: {} is a copy, not the file's bytes", source.name)
            });
            assert_eq!(range.len(), expected.len(), "{name}: {}", source.name);
            assert!(
                matches!(w.bytes, std::borrow::Cow::Borrowed(_)),
                "{name}: {}",
                source.name
            );
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_stored_tokenizer_encodes_like_the_json_it_came_from() {
    let dir = scratch("tokenizer");
    std::fs::write(dir.join("tokenizer.json"), synthetic_tokenizer_json(512)).unwrap();
    let from_json = Tokenizer::from_dir(&dir).unwrap();
    // A one-layer model is enough to carry the tokenizer.
    glmhal_model::synth::synth(
        glmhal_model::synth::find_preset("tiny").unwrap(),
        &dir.join("model"),
        DType::F32,
        1,
    )
    .unwrap();
    let file = dir.join("tiny.gguf");
    export(
        &Checkpoint::open(&dir.join("model")).unwrap(),
        &file,
        DType::F16,
        "tiny",
    )
    .unwrap();
    let from_gguf = Tokenizer::from_dir(&file).unwrap();
    let text = "[gMASK]<sop><|user|>\nHello, 世界 12345!";
    assert_eq!(
        from_gguf.encode(text).unwrap(),
        from_json.encode(text).unwrap()
    );
    let ids = from_gguf.encode(text).unwrap();
    assert_eq!(from_gguf.decode(&ids).unwrap(), text);
    assert_eq!(
        from_gguf.special("<|assistant|>"),
        from_json.special("<|assistant|>")
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A minimal valid file: one metadata entry, one 32-value F32 tensor.
fn tiny_file(dir: &Path) -> Vec<u8> {
    let path = dir.join("tiny-valid.gguf");
    write(
        &path,
        &[("general.architecture".into(), Meta::Str("glm4".into()))],
        &[TensorSpec {
            name: "t".into(),
            ty: GgmlType::F32,
            shape: vec![2, 32],
        }],
        |_| Ok(vec![0u8; 256].into()),
    )
    .unwrap();
    std::fs::read(path).unwrap()
}

fn err(bytes: &[u8]) -> String {
    parse(bytes).err().unwrap_or_else(|| "parsed".into())
}

#[test]
fn malformed_fields_are_named() {
    let dir = scratch("malformed");
    let good = tiny_file(&dir);
    assert!(parse(&good).is_ok());
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = good.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    assert!(err(&patched(0, b"GGUG")).contains("magic"));
    assert!(err(&patched(4, &1u32.to_le_bytes())).contains("version 1"));
    assert!(err(&patched(4, &4u32.to_le_bytes())).contains("version 4"));
    // A tensor count that lies.
    assert!(err(&patched(8, &(1u64 << 40).to_le_bytes())).contains("cannot fit"));
    // The alignment key's string length (first metadata key) made huge.
    assert!(err(&patched(24, &(u64::MAX - 3).to_le_bytes())).contains("string length"));
    // Locate the tensor info: name `t`, then n_dims, dims, type, offset.
    let info = good
        .windows(9)
        .position(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, b't'])
        .unwrap()
        + 9;
    let ty = info + 4 + 16;
    assert!(err(&patched(ty, &99u32.to_le_bytes())).contains("unknown tensor type 99"));
    assert!(err(&patched(ty + 4, &8u64.to_le_bytes())).contains("not aligned"));
    assert!(err(&patched(ty + 4, &(1u64 << 20).to_le_bytes())).contains("past the end"));
    assert!(err(&patched(info + 4, &(u64::MAX / 2).to_le_bytes())).contains("overflow"));
    assert!(err(&patched(info, &9u32.to_le_bytes())).contains("dims"));
    // A valid file without the GLM keys: the missing key is named.
    let path = dir.join("no-keys.gguf");
    std::fs::write(&path, &good).unwrap();
    let e = Checkpoint::open(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("glm4.embedding_length"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn truncated_and_corrupted_files_never_panic() {
    let dir = scratch("corpus");
    let source = Checkpoint::open(&fixture("glm4-gqa4-tf5")).unwrap();
    let file = dir.join("seed.gguf");
    export(&source, &file, DType::Q8_0, "seed").unwrap();
    let seed = std::fs::read(&file).unwrap();
    let mut rng = Rng::new(7);
    let header_end = parse(&seed).unwrap().data_start;
    let mut cases = 0;
    // Every truncation of the header, and every header byte flipped.
    for cut in (0..header_end).chain([seed.len() - 1]) {
        let _ = parse(&seed[..cut]);
        cases += 1;
    }
    for at in 0..header_end {
        let mut b = seed.clone();
        b[at] ^= 0xff;
        if let Ok(layout) = parse(&b) {
            assert!(layout.tensors.iter().all(|t| t.range.end <= b.len()));
        }
        cases += 1;
    }
    for i in 0..3000 {
        let mut b = seed[..header_end + 64].to_vec();
        let at = rng.below(header_end);
        match i % 3 {
            0 => b[at] = rng.next_u64() as u8,
            1 => {
                let n = 8.min(b.len() - at);
                b[at..at + n].copy_from_slice(&rng.next_u64().to_le_bytes()[..n]);
            }
            _ => b[at] ^= 0x80,
        }
        if let Ok(layout) = parse(&b) {
            // Whatever parses has every tensor inside the input.
            assert!(layout.tensors.iter().all(|t| t.range.end <= b.len()));
        }
        cases += 1;
    }
    assert!(cases > 3000);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_tensor_count_that_does_not_match_the_table_is_named() {
    let dir = scratch("count");
    let source = Checkpoint::open(&fixture("glm4-gqa4-tf5")).unwrap();
    let file = dir.join("seed.gguf");
    export(&source, &file, DType::F16, "seed").unwrap();
    let seed = std::fs::read(&file).unwrap();
    let count = u64::from_le_bytes(seed[8..16].try_into().unwrap());
    for wrong in [count - 1, count + 1] {
        let mut b = seed.clone();
        b[8..16].copy_from_slice(&wrong.to_le_bytes());
        let err = parse(&b).unwrap_err();
        assert!(err.contains("tensor table"), "count {wrong}: {err}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn k_quants_decode_like_ggml() {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("kquants.json")).unwrap()).unwrap();
    for (name, ty) in [
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
    ] {
        let case = &json[name];
        let bytes: Vec<u8> = case["bytes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let want: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = glmhal_model::kquants::dequantize(ty, &bytes, want.len()).unwrap();
        assert_eq!(got, want, "{name}");
        assert!(glmhal_model::kquants::dequantize(ty, &bytes[1..], want.len()).is_err());
    }
}

/// A one-layer glm4 model written tensor by tensor, with `output.weight`
/// given as `head` (type and bytes).
fn kquant_model(path: &Path, head: (GgmlType, Vec<u8>)) {
    let (h, f, v, kv) = (256usize, 256usize, 256usize, 128usize);
    let mut rng = Rng::new(11);
    let mut random = |n: usize, scale: f32| -> Vec<u8> {
        (0..n)
            .flat_map(|_| rng.uniform(-scale, scale).to_le_bytes())
            .collect()
    };
    let ones = |n: usize| -> Vec<u8> { (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect() };
    let mut tensors: Vec<(TensorSpec, Vec<u8>)> = vec![];
    let mut add = |name: &str, shape: &[usize], bytes: Vec<u8>, ty: GgmlType| {
        tensors.push((
            TensorSpec {
                name: name.into(),
                ty,
                shape: shape.to_vec(),
            },
            bytes,
        ))
    };
    let s = 1.0 / (h as f32).sqrt();
    add(
        "token_embd.weight",
        &[v, h],
        random(v * h, 1.0),
        GgmlType::F32,
    );
    add("output_norm.weight", &[h], ones(h), GgmlType::F32);
    add("output.weight", &[v, h], head.1.clone(), head.0);
    for (name, rows) in [
        ("attn_q", h),
        ("attn_k", kv),
        ("attn_v", kv),
        ("attn_output", h),
    ] {
        add(
            &format!("blk.0.{name}.weight"),
            &[rows, h],
            random(rows * h, s),
            GgmlType::F32,
        );
    }
    add(
        "blk.0.ffn_up.weight",
        &[2 * f, h],
        random(2 * f * h, s),
        GgmlType::F32,
    );
    add(
        "blk.0.ffn_down.weight",
        &[h, f],
        random(h * f, s),
        GgmlType::F32,
    );
    for norm in [
        "attn_norm",
        "ffn_norm",
        "post_attention_norm",
        "post_ffw_norm",
    ] {
        add(
            &format!("blk.0.{norm}.weight"),
            &[h],
            ones(h),
            GgmlType::F32,
        );
    }
    let k = |s: &str| format!("glm4.{s}");
    let meta = vec![
        ("general.architecture".to_string(), Meta::Str("glm4".into())),
        (k("context_length"), Meta::U32(64)),
        (k("embedding_length"), Meta::U32(h as u32)),
        (k("block_count"), Meta::U32(1)),
        (k("feed_forward_length"), Meta::U32(f as u32)),
        (k("attention.head_count"), Meta::U32(4)),
        (k("attention.head_count_kv"), Meta::U32(2)),
        (k("attention.layer_norm_rms_epsilon"), Meta::F32(1e-5)),
        (k("rope.dimension_count"), Meta::U32(32)),
    ];
    let specs: Vec<TensorSpec> = tensors.iter().map(|t| t.0.clone()).collect();
    write(path, &meta, &specs, |i| Ok(tensors[i].1.clone().into())).unwrap();
}

#[test]
fn k_quant_weights_load_as_their_nearest_type() {
    let dir = scratch("kquant-model");
    // Random Q6_K blocks with small finite scales are a valid Q6_K matrix.
    let mut rng = Rng::new(5);
    let mut q6k = vec![0u8; 256 * 210];
    for block in q6k.chunks_exact_mut(210) {
        for b in block.iter_mut() {
            *b = rng.next_u64() as u8;
        }
        block[208..].copy_from_slice(&half::f16::from_f32(rng.uniform(0.001, 0.01)).to_le_bytes());
    }
    let with_k = dir.join("q6k.gguf");
    kquant_model(&with_k, (GgmlType::Q6K, q6k.clone()));
    // The same model with the head as what the conversion must produce.
    let values = glmhal_model::kquants::dequantize(GgmlType::Q6K, &q6k, 256 * 256).unwrap();
    let q8 = glmhal_hal::quant::from_f32(DType::Q8_0, &values).unwrap();
    let with_q8 = dir.join("q8.gguf");
    kquant_model(&with_q8, (GgmlType::Q8_0, q8));
    let tokens = [1u32, 7, 42, 200];
    let a = load(&with_k).logits(&tokens, DType::F32).unwrap();
    let b = load(&with_q8).logits(&tokens, DType::F32).unwrap();
    assert_eq!(a, b);
    assert!(a.iter().all(|x| x.is_finite()));
    // A type glmhal cannot read is named.
    let odd = dir.join("q2k.gguf");
    kquant_model(&odd, (GgmlType::Other(10), vec![0u8; 256 * 84]));
    let backend = glmhal_cpu::Provider
        .open(None, &glmhal_hal::BackendOptions::default())
        .unwrap();
    let e = Model::load(&odd, backend, LoadOptions::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("output.weight") && e.contains("Q2_K"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}
