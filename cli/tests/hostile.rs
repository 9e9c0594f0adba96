//! Hostile and unlucky inputs: clear errors, never a panic, never a file of
//! the user's written over.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{glmhal, text};

/// A fresh scratch directory holding a `tiny` model (512 positions) in `model/`.
fn with_tiny_model(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("glmhal-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.join("model");
    let out = glmhal(&[
        "synth",
        "--preset",
        "tiny",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    (dir, model)
}

/// A fresh scratch directory holding the `tiny` model with f32 weights (whose
/// values tests can patch) in `f32/`.
fn with_tiny_f32_model(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("glmhal-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.join("f32");
    let out = glmhal(&[
        "synth",
        "--preset",
        "tiny",
        "--dtype",
        "f32",
        "--out",
        s(&model),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    (dir, model)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

fn refused(out: &std::process::Output, says: &str) {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains(says), "`{says}` not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn no_command_writes_over_a_file_it_reads() {
    let (dir, model) = with_tiny_model("inputs");
    let before = snapshot(&model);
    let weights = model.join("model.safetensors");
    refused(
        &glmhal(&[
            "logits",
            "--model",
            s(&model),
            "--tokens",
            "1,2",
            "--out",
            s(&weights),
        ]),
        "never written over",
    );
    refused(
        &glmhal(&["convert", "--model", s(&model), "--out", s(&weights)]),
        "never written over",
    );
    // Another spelling of the same file.
    let spelled = model.join(".").join("config.json");
    refused(
        &glmhal(&["convert", "--model", s(&model), "--out", s(&spelled)]),
        "never written over",
    );
    assert_eq!(snapshot(&model), before, "the model directory changed");

    let doc = dir.join("bench.json");
    std::fs::write(&doc, b"{\"schema\": \"glmhal.bench/1\"}").unwrap();
    refused(
        &glmhal(&["report", "--in", s(&doc), "--out", s(&doc)]),
        "never written over",
    );
    assert_eq!(
        std::fs::read(&doc).unwrap(),
        b"{\"schema\": \"glmhal.bench/1\"}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outputs_are_checked_before_any_work_and_appear_whole() {
    let (dir, model) = with_tiny_model("outputs");
    // Before the suite runs, not after it.
    let out = glmhal(&[
        "conformance",
        "--backend",
        "cpu",
        "--json",
        "/no/such/dir/report.json",
    ]);
    refused(&out, "does not exist");
    assert!(!text(&out).1.contains("running"), "{:?}", text(&out));
    let missing = dir.join("no").join("x.gguf");
    refused(
        &glmhal(&["convert", "--model", s(&model), "--out", s(&missing)]),
        "does not exist",
    );
    // A converted file and a synthesized GGUF, over files that exist, with
    // no temporary or staging file left beside them.
    let gguf = dir.join("out.gguf");
    std::fs::write(&gguf, b"old").unwrap();
    let out = glmhal(&["convert", "--model", s(&model), "--out", s(&gguf)]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(std::fs::read(&gguf).unwrap().starts_with(b"GGUF"));
    let synth = dir.join("synth.gguf");
    let out = glmhal(&[
        "synth",
        "--preset",
        "tiny",
        "--format",
        "gguf",
        "--dtype",
        "q8_0",
        "--out",
        s(&synth),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with('.') && !n.contains("partial") && !n.contains("staging")),
        "{names:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_counts_and_contexts_are_checked() {
    let (dir, model) = with_tiny_model("context");
    let m = s(&model);
    let huge = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            m,
            "--tokens",
            "1,2",
            "--max-new-tokens",
            "18446744073709551615",
        ];
        args.extend_from_slice(extra);
        glmhal(&args)
    };
    refused(&huge(&[]), "cannot be counted");
    refused(&huge(&["--beyond-context"]), "cannot be counted");
    refused(
        &glmhal(&[
            "generate",
            "--model",
            m,
            "--tokens",
            "1,2",
            "--max-new-tokens",
            "600",
        ]),
        "trained context of 512",
    );
    let out = glmhal(&[
        "generate",
        "--model",
        m,
        "--tokens",
        "1,2",
        "--max-new-tokens",
        "520",
        "--ignore-eos",
        "--beyond-context",
        "--json",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("--beyond-context"),
        "{:?}",
        text(&out).1
    );
    let many: Vec<String> = (0..600).map(|i| (i % 200).to_string()).collect();
    let npy = dir.join("logits.npy");
    refused(
        &glmhal(&[
            "logits",
            "--model",
            m,
            "--tokens",
            &many.join(","),
            "--out",
            s(&npy),
        ]),
        "trained context of 512",
    );
    assert!(!npy.exists());
    // Only the dtypes weights can take are offered.
    let out = glmhal(&["generate", "--model", m, "--tokens", "1", "--weights", "q9"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out).1;
    assert!(
        stderr.contains("q4_0") && !stderr.contains("i32"),
        "{stderr}"
    );
    // Nothing was timed: no rate, not billions of tokens per second.
    let out = glmhal(&[
        "generate",
        "--model",
        m,
        "--tokens",
        "1,2",
        "--max-new-tokens",
        "0",
        "--json",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["timings"]["prefill_tokens_per_second"].is_null(), "{v}");
    assert!(v["timings"]["decode_tokens_per_second"].is_null(), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn configs_are_checked_against_the_tensors_present() {
    let (dir, model) = with_tiny_model("layers");
    let m = s(&model);
    let config = model.join("config.json");
    let original = std::fs::read_to_string(&config).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    // A claim of a billion layers is refused at once, before anything is
    // sized by it; a config that leaves layers unused is refused too.
    for (layers, says) in [
        (1_000_000_000u64, "holds tensors for 2"),
        (1, "left unused"),
    ] {
        v["num_hidden_layers"] = serde_json::Value::from(layers);
        std::fs::write(&config, serde_json::to_string(&v).unwrap()).unwrap();
        let start = std::time::Instant::now();
        refused(
            &glmhal(&["generate", "--model", m, "--tokens", "1,2"]),
            says,
        );
        assert!(start.elapsed().as_secs() < 10);
    }
    std::fs::write(&config, original).unwrap();
    // A tensor no weight reads: a notice names it, the model still runs.
    let extra = model.join("extra.safetensors");
    let header = r#"{"extra.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 8]);
    std::fs::write(&extra, bytes).unwrap();
    let out = glmhal(&[
        "generate",
        "--model",
        m,
        "--tokens",
        "1,2",
        "--max-new-tokens",
        "1",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).1.contains("not used: extra.bias"),
        "{:?}",
        text(&out).1
    );
    std::fs::remove_file(&extra).unwrap();
    // The same tensor in two shards.
    let shard = model.join("model-2.safetensors");
    std::fs::copy(model.join("model.safetensors"), &shard).unwrap();
    refused(
        &glmhal(&["generate", "--model", m, "--tokens", "1,2"]),
        "is in both",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_chat_turn_is_reported_and_the_session_goes_on() {
    use std::io::Write;
    let (dir, model) = with_tiny_model("chat");
    let mut child = Command::new(env!("CARGO_BIN_EXE_glmhal"))
        .args(["chat", "--model", s(&model), "--max-new-tokens", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        // Far longer than any 512-position context (judged by its length,
        // before it is tokenized), then bytes that are not UTF-8, then a
        // turn too long in tokens, then a fine one.
        stdin.write_all(&vec![b'a'; 8 << 20]).unwrap();
        stdin.write_all(b"\n\xff\xfe hello\n").unwrap();
        stdin.write_all("word ".repeat(600).as_bytes()).unwrap();
        stdin.write_all(b"\nhello\n/exit\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fits the model's context"), "{stderr}");
    assert!(stderr.contains("not UTF-8"), "{stderr}");
    assert!(stderr.contains("trained context"), "{stderr}");
    assert_eq!(stderr.matches("the session goes on").count(), 3, "{stderr}");
    // The last turn was answered.
    assert!(stderr.contains("[load"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites tensor `name` of `file` (a safetensors file): its dtype field,
/// and its first value as f32 bits.
fn patch_safetensors(file: &Path, name: &str, dtype: Option<&str>, first: Option<f32>) {
    let mut bytes = std::fs::read(file).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + len].to_vec()).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(header.trim_end()).unwrap();
    let start = v[name]["data_offsets"][0].as_u64().unwrap() as usize;
    if let Some(d) = dtype {
        v[name]["dtype"] = serde_json::Value::from(d);
    }
    let mut text = serde_json::to_string(&v).unwrap();
    assert!(text.len() <= len, "the patched header grew");
    text.extend(std::iter::repeat_n(' ', len - text.len()));
    bytes[8..8 + len].copy_from_slice(text.as_bytes());
    if let Some(x) = first {
        let at = 8 + len + start;
        bytes[at..at + 4].copy_from_slice(&x.to_le_bytes());
    }
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn weights_that_are_not_floats_or_overflow_their_dtype_are_refused() {
    let (dir, model) = with_tiny_f32_model("weights");
    let m = s(&model);
    let file = model.join("model.safetensors");
    // Finite in f32, infinite in f16 or as a Q8_0 scale.
    patch_safetensors(
        &file,
        "model.layers.0.mlp.down_proj.weight",
        None,
        Some(1e30),
    );
    for dtype in ["f16", "q8_0"] {
        refused(
            &glmhal(&[
                "generate",
                "--model",
                m,
                "--tokens",
                "1,2",
                "--weights",
                dtype,
            ]),
            "mlp.down_proj",
        );
    }
    // An integer tensor where a weight belongs.
    patch_safetensors(
        &file,
        "model.layers.0.mlp.down_proj.weight",
        Some("I32"),
        None,
    );
    refused(
        &glmhal(&["generate", "--model", m, "--tokens", "1,2"]),
        "is stored as i32",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn activations_that_overflow_stop_the_run_naming_the_first_node() {
    let (dir, model) = with_tiny_f32_model("overflow");
    let m = s(&model);
    // Finite weights whose q·k overflows f32 in the first layer's attention.
    let file = model.join("model.safetensors");
    for name in ["q_proj", "k_proj"] {
        let name = format!("model.layers.0.self_attn.{name}.weight");
        patch_safetensors(&file, &name, None, Some(1e25));
    }
    let says = "`layers.0.attention#0` (attention";
    for sampling in [&[][..], &["--temperature", "0.8", "--seed", "1"]] {
        let mut args = vec!["generate", "--model", m, "--tokens", "1,2,3"];
        args.extend_from_slice(sampling);
        let out = glmhal(&args);
        refused(&out, says);
        assert!(
            text(&out).1.contains("from finite inputs"),
            "{:?}",
            text(&out)
        );
    }
    // No .npy of NaNs is written.
    let npy = dir.join("logits.npy");
    refused(
        &glmhal(&[
            "logits",
            "--model",
            m,
            "--tokens",
            "1,2,3",
            "--out",
            s(&npy),
        ]),
        says,
    );
    assert!(!npy.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_is_an_error() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let (dir, model) = with_tiny_model("stdout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_glmhal"))
        .args([
            "generate",
            "--model",
            s(&model),
            "--tokens",
            "1,2,3",
            "--max-new-tokens",
            "200",
        ])
        .args(["--ignore-eos"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader is gone (as after `| head -c 1`).
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.signal() == Some(libc_sigpipe()) || out.status.success(),
        "{:?}: {stderr}",
        out.status
    );
    if Path::new("/dev/full").exists() {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_glmhal"))
            .args(["ops"])
            .stdout(full)
            .output()
            .unwrap();
        refused(&out, "writing to standard output");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGPIPE's number on Linux and the BSDs.
#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13
}
