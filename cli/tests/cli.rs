//! The `glmhal` binary as users run it.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

mod common;

use common::{glmhal, text};

#[test]
fn devices_lists_the_cpu_as_available_with_details() {
    let out = glmhal(&["devices", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cpu = v
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == "cpu")
        .unwrap();
    assert_eq!(cpu["status"], "available");
    let dev = &cpu["devices"][0];
    assert!(dev["compute_units"].as_u64().unwrap() >= 1);
    assert!(dev["architecture"]
        .as_str()
        .unwrap()
        .starts_with(std::env::consts::ARCH));
    for name in ["wgpu", "opencl", "cuda", "hip", "cann"] {
        assert!(
            v.as_array().unwrap().iter().any(|b| b["backend"] == name),
            "{name} missing"
        );
    }
    let table = glmhal(&["devices", "--color", "never"]);
    let (stdout, _) = text(&table);
    assert!(
        stdout.contains("cpu:0") && stdout.contains("available"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "colour without a terminal");
}

#[test]
fn full_cpu_conformance_passes_and_its_json_names_every_op() {
    let dir = std::env::temp_dir().join(format!("glmhal-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let md = dir.join("report.md");
    let out = glmhal(&[
        "conformance",
        "--backend",
        "cpu",
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        md.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "glmhal.conformance/2");
    let ops: Vec<&str> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap())
        .collect();
    for spec in glmhal_ops::catalogue() {
        assert!(
            ops.contains(&spec.name),
            "{} missing from the report",
            spec.name
        );
    }
    let summary = &v["summary"]["cpu"];
    assert_eq!(summary["fail"], 0);
    assert_eq!(summary["error"], 0);
    assert_eq!(summary["unsupported"], 0);
    assert!(summary["pass"].as_u64().unwrap() > 500);
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2, "the built-in model rows");
    assert!(
        models
            .iter()
            .all(|m| m["status"] == "pass" && m["greedy_match"] == true),
        "{models:?}"
    );
    assert!(std::fs::read_to_string(&md)
        .unwrap()
        .contains("| mat_mul |"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn filters_narrow_the_run() {
    let out = glmhal(&["conformance", "--op", "rope", "--dtype", "bf16", "--list"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.lines().count() >= 5);
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("rope") && l.contains("bf16")),
        "{stdout}"
    );
    // --without-dtype leaves out every case that has a tensor of that dtype.
    let all = glmhal(&["conformance", "--op", "mat_mul", "--list"]);
    let out = glmhal(&[
        "conformance",
        "--op",
        "mat_mul",
        "--without-dtype",
        "bf16",
        "--list",
    ]);
    let ((all, _), (without, _)) = (text(&all), text(&out));
    assert!(out.status.success());
    assert!(
        all.contains("bf16") && !without.contains("bf16"),
        "{without}"
    );
    assert_eq!(
        without.lines().count(),
        all.lines().filter(|l| !l.contains("bf16")).count()
    );
}

#[test]
fn unusable_backends_and_bad_arguments_are_clear_errors() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["conformance", "--backend", "cann", "--op", "add"],
            "cann: not tested",
        ),
        // Compiled in, and says why it cannot run here (no driver, no device).
        (
            &["conformance", "--backend", "cuda", "--op", "add"],
            "cuda: not tested",
        ),
        (
            &["conformance", "--backend", "hip", "--op", "add"],
            "hip: not tested",
        ),
        (
            &["conformance", "--backend", "cpu:3", "--op", "add"],
            "no device 3",
        ),
        (&["conformance", "--backend", "tpu"], "unknown backend"),
        (&["conformance", "--op", "conv2d"], "unknown op"),
        (&["conformance", "--dtype", "f64"], "unknown dtype"),
    ];
    for (args, needle) in cases {
        let out = glmhal(args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert!(
            stdout.contains(needle) || stderr.contains(needle),
            "{args:?}: {stdout}{stderr}"
        );
    }
    let out = glmhal(&["conformance", "--op", "add", "--dtype", "q4_0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("select no case"));
}

#[test]
fn a_bad_setting_is_refused_naming_its_variable_not_a_panic() {
    for (var, value) in [
        ("GLMHAL_CPU_THREADS", "lots"),
        ("GLMHAL_CPU_ISA", "sse"),
        ("GLMHAL_INJECT_DELAY", "mat_mul"),
    ] {
        let out = common::glmhal_env(&["devices"], &[(var, value)]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{var}: {stdout}{stderr}");
        assert!(
            stderr.contains(var) && !stderr.contains("panicked"),
            "{var}: {stdout}{stderr}"
        );
    }
}

#[test]
fn ops_lists_the_catalogue() {
    let out = glmhal(&["ops", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), glmhal_ops::catalogue().len());
    let help = glmhal(&["--help"]);
    assert!(text(&help).0.contains("glmhal conformance"));
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures")
        .join(name)
}

fn golden(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap())
        .unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect()
}

fn csv(v: &[u64]) -> String {
    v.iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn logits_match_every_golden_fixture() {
    for name in [
        "glm-gqa2-tf4",
        "glm4-gqa4-tf5",
        "glm-mha-chatglm",
        "glm4-mqa-theta5e6",
    ] {
        let g = golden(name);
        let out =
            std::env::temp_dir().join(format!("glmhal-logits-{}-{name}.npy", std::process::id()));
        let run = glmhal(&[
            "logits",
            "--model",
            fixture(name).to_str().unwrap(),
            "--tokens",
            &csv(&ids(&g["prompt"])),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{:?}", text(&run));
        let npy = std::fs::read(&out).unwrap();
        assert_eq!(&npy[..6], b"\x93NUMPY");
        let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        let header = String::from_utf8_lossy(&npy[10..10 + header_len]).to_string();
        assert!(
            header.contains("'descr': '<f4'")
                && header.contains(&format!("({}, ", ids(&g["prompt"]).len())),
            "{header}"
        );
        let got: Vec<f32> = npy[10 + header_len..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let f = glmhal_model::safetensors::SafetensorsFile::open(
            &fixture(name).join("golden.safetensors"),
        )
        .unwrap();
        let want: Vec<f32> = f
            .tensor("logits")
            .unwrap()
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(got.len(), want.len());
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-4, "{name}: {err}");
        std::fs::remove_file(out).ok();
    }
}

#[test]
fn generate_reproduces_the_golden_greedy_tokens() {
    for name in [
        "glm-gqa2-tf4",
        "glm4-gqa4-tf5",
        "glm-mha-chatglm",
        "glm4-mqa-theta5e6",
    ] {
        let g = golden(name);
        let want = ids(&g["greedy"]);
        let run = glmhal(&[
            "generate",
            "--model",
            fixture(name).to_str().unwrap(),
            "--tokens",
            &csv(&ids(&g["prompt"])),
            "--max-new-tokens",
            &want.len().to_string(),
            "--ignore-eos",
            "--json",
        ]);
        assert!(run.status.success(), "{:?}", text(&run));
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(ids(&v["tokens"]), want, "{name}");
        assert!(v["timings"]["decode_tokens_per_second"].as_f64().unwrap() > 0.0);
        assert!(v["memory"]["kv_cache_bytes"].as_u64().unwrap() > 0);
    }
}

#[test]
fn synth_then_generate_runs_from_text() {
    let dir = std::env::temp_dir().join(format!("glmhal-synth-{}", std::process::id()));
    let run = glmhal(&[
        "synth",
        "--preset",
        "tiny",
        "--out",
        dir.to_str().unwrap(),
        "--dtype",
        "bf16",
    ]);
    assert!(run.status.success(), "{:?}", text(&run));
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let sample = |seed: &str| {
        let run = glmhal(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "Hello, 世界",
            "--chat",
            "--max-new-tokens",
            "6",
            "--temperature",
            "0.8",
            "--top-k",
            "20",
            "--seed",
            seed,
            "--json",
        ]);
        assert!(run.status.success(), "{:?}", text(&run));
        serde_json::from_slice::<serde_json::Value>(&run.stdout).unwrap()
    };
    let v = sample("3");
    assert!(!v["tokens"].as_array().unwrap().is_empty());
    // Same seed, same tokens.
    let w = sample("3");
    assert_eq!(v["tokens"], w["tokens"]);
    // Streaming text mode reports timings on stderr.
    let run = glmhal(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--tokens",
        "1,2,3",
        "--max-new-tokens",
        "3",
        "--weights",
        "q8_0",
    ]);
    let (_, stderr) = text(&run);
    assert!(
        run.status.success() && stderr.contains("tok/s") && stderr.contains("peak RSS"),
        "{stderr}"
    );
    let bad = glmhal(&["synth", "--preset", "gpt-5", "--out", dir.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).1.contains("unknown preset"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn model_commands_report_bad_input_clearly() {
    let m = fixture("glm-gqa2-tf4");
    let cases: [(&[&str], &str); 5] = [
        (
            &["generate", "--model", "/no/such/model", "--tokens", "1"],
            "no such model directory",
        ),
        (
            &[
                "generate",
                "--model",
                m.to_str().unwrap(),
                "--tokens",
                "1,99999",
            ],
            "token id 99999",
        ),
        (
            &[
                "generate",
                "--model",
                m.to_str().unwrap(),
                "--tokens",
                "1,x",
            ],
            "not a token id",
        ),
        (
            &["generate", "--model", m.to_str().unwrap(), "--prompt", "hi"],
            "no tokenizer.json",
        ),
        (
            &[
                "generate",
                "--model",
                m.to_str().unwrap(),
                "--tokens",
                "1",
                "--backend",
                "cann",
            ],
            "backend cann is unavailable",
        ),
    ];
    for (args, needle) in cases {
        let out = glmhal(args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let long: Vec<String> = (0..300).map(|i| (i % 100).to_string()).collect();
    let out = glmhal(&[
        "generate",
        "--model",
        m.to_str().unwrap(),
        "--tokens",
        &long.join(","),
        "--max-new-tokens",
        "2",
    ]);
    assert!(
        text(&out).1.contains("past the model's trained context"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn chat_answers_turns_from_stdin() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("glmhal-chat-{}", std::process::id()));
    assert!(
        glmhal(&["synth", "--preset", "tiny", "--out", dir.to_str().unwrap()])
            .status
            .success()
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_glmhal"))
        .args([
            "chat",
            "--model",
            dir.to_str().unwrap(),
            "--max-new-tokens",
            "4",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("hello\n你好\n/exit\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("decode").count(),
        2,
        "two turns answered: {stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn gguf_files_generate_from_text_and_convert_keeps_greedy_tokens() {
    let dir = std::env::temp_dir().join(format!("glmhal-gguf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tiny.gguf");
    let run = glmhal(&[
        "synth",
        "--preset",
        "tiny",
        "--format",
        "gguf",
        "--dtype",
        "f32",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{:?}", text(&run));
    // Nothing but the file: its tokenizer turns the text into ids.
    let greedy = |model: &std::path::Path| {
        let run = glmhal(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Hello, 世界",
            "--chat",
            "--max-new-tokens",
            "6",
            "--ignore-eos",
            "--json",
        ]);
        assert!(run.status.success(), "{:?}", text(&run));
        let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        ids(&v["tokens"])
    };
    let from_file = greedy(&file);
    assert_eq!(from_file.len(), 6);
    // GGUF to GGUF, same type: the same model.
    let copy = dir.join("copy.gguf");
    let run = glmhal(&[
        "convert",
        "--model",
        file.to_str().unwrap(),
        "--out",
        copy.to_str().unwrap(),
        "--dtype",
        "f32",
    ]);
    assert!(run.status.success(), "{:?}", text(&run));
    assert_eq!(greedy(&copy), from_file);
    // Refusals: overwriting the input, a dtype matrices cannot have, a broken file.
    let same = glmhal(&[
        "convert",
        "--model",
        file.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(!same.status.success() && text(&same).1.contains("never written over"));
    let bad = glmhal(&[
        "convert",
        "--model",
        file.to_str().unwrap(),
        "--out",
        dir.join("x.gguf").to_str().unwrap(),
        "--dtype",
        "i32",
    ]);
    assert!(!bad.status.success() && text(&bad).1.contains("`i32` is not a weight dtype"));
    let broken = dir.join("broken.gguf");
    std::fs::write(&broken, &std::fs::read(&file).unwrap()[..200]).unwrap();
    let run = glmhal(&[
        "generate",
        "--model",
        broken.to_str().unwrap(),
        "--prompt",
        "hi",
    ]);
    let (_, stderr) = text(&run);
    assert!(
        !run.status.success() && stderr.contains("broken.gguf"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn one_generated_token_reports_no_decode_rate() {
    let model = fixture("glm4-gqa4-tf5");
    let args = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "1,2,3",
    ];
    let json = glmhal(
        &[
            &args[..],
            &["--max-new-tokens", "1", "--ignore-eos", "--json"],
        ]
        .concat(),
    );
    assert!(json.status.success(), "{:?}", text(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["tokens"].as_array().map(Vec::len), Some(1));
    assert!(v["timings"]["decode_tokens_per_second"].is_null(), "{v}");
    let plain = glmhal(&[&args[..], &["--max-new-tokens", "1", "--ignore-eos"]].concat());
    assert!(plain.status.success(), "{:?}", text(&plain));
    let (_, stderr) = text(&plain);
    assert!(stderr.contains("no decode step"), "{stderr}");
}
