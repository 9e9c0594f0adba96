//! `glmhal bench`, `glmhal ci` and `glmhal report` as CI systems run them.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

mod common;

use common::{glmhal, glmhal_env, text};

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("glmhal-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bench_writes_a_versioned_document_with_fingerprint_and_rates() {
    let dir = scratch("bench");
    let json = dir.join("bench.json");
    let out = glmhal(&[
        "bench",
        "--preset",
        "tiny",
        "--backend",
        "cpu",
        "--quick",
        "--contexts",
        "128",
        "--batch",
        "1,4",
        "--prompt",
        "16",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "glmhal.bench/1");
    assert_eq!(v["fingerprints"][0]["backend"], "cpu");
    assert!(v["fingerprints"][0]["device"].as_str().unwrap().len() > 3);
    let ops = v["ops"].as_array().unwrap();
    assert!(ops
        .iter()
        .any(|o| o["op"] == "attention" && o["label"].as_str().unwrap().contains("ctx 128")));
    assert!(ops.iter().all(
        |o| o["gflops"].as_f64().unwrap() > 0.0 && o["stats"]["samples"].as_u64().unwrap() >= 5
    ));
    let model = &v["models"][0];
    assert_eq!(model["decode"].as_array().unwrap().len(), 2);
    assert!(model["prefill_tps"].as_f64().unwrap() > 0.0);
    // The binary counts heap allocations, so every decode row reports them.
    for d in model["decode"].as_array().unwrap() {
        assert!(d["allocations_per_step"].as_f64().is_some(), "{d}");
    }
    assert!(stdout.contains("heap allocations per step"), "{stdout}");
    assert!(stdout.contains("decode batch  4"), "{stdout}");

    // The report turns it into a page; an unknown document is a clear error.
    let html = dir.join("report.html");
    let out = glmhal(&[
        "report",
        "--in",
        json.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("data-charts") && page.contains("tiny qkv decode"));
    let bogus = dir.join("bogus.json");
    std::fs::write(&bogus, r#"{"schema": "nope/1"}"#).unwrap();
    let out = glmhal(&[
        "report",
        "--in",
        bogus.to_str().unwrap(),
        "--out",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("unknown document schema"),
        "{:?}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bench_measures_a_checkpoint_as_stored_unless_told_otherwise() {
    let dir = scratch("bench-stored");
    let gguf = dir.join("tiny-q8_0.gguf");
    let out = glmhal(&[
        "synth",
        "--preset",
        "tiny",
        "--format",
        "gguf",
        "--dtype",
        "q8_0",
        "--out",
        gguf.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    for (extra, want) in [(None, "q8_0"), (Some("f16"), "f16")] {
        let json = dir.join(format!("{want}.json"));
        let mut args = vec![
            "bench",
            "--model",
            gguf.to_str().unwrap(),
            "--skip-ops",
            "--quick",
            "--batch",
            "1",
            "--prompt",
            "8",
            "--json",
            json.to_str().unwrap(),
        ];
        if let Some(dtype) = extra {
            args.extend(["--weights", dtype]);
        }
        let out = glmhal(&args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(stdout.contains(&format!("({want} weights")), "{stdout}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["models"][0]["weights"], want, "{extra:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ci_makes_a_baseline_and_a_planted_slowdown_is_a_speed_regression() {
    let dir = scratch("ci");
    let baseline = dir.join("baseline.json");
    let b = baseline.to_str().unwrap();
    let common = [
        "ci",
        "--backend",
        "cpu",
        "--quick",
        "--bench-preset",
        "tiny",
        "--baseline",
        b,
    ];

    // No baseline yet: an infrastructure error that says how to make one.
    let out = glmhal(&common);
    assert_eq!(out.status.code(), Some(2), "{:?}", text(&out));
    assert!(text(&out).1.contains("--update-baseline"));

    let mut update = common.to_vec();
    update.push("--update-baseline");
    let out = glmhal(&update);
    assert!(out.status.success(), "{:?}", text(&out));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(v["schema"], "glmhal.ci/2");
    assert!(v["cases"].as_array().unwrap().len() > 500);

    let junit = dir.join("junit.xml");
    let mut slow = common.to_vec();
    slow.extend([
        "--speed-tolerance",
        "1.0",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    let out = glmhal_env(&slow, &[("GLMHAL_INJECT_DELAY", "mat_mul:30")]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stderr.contains("GLMHAL_INJECT_DELAY") && stdout.contains("speed regression"),
        "{stdout}{stderr}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"conformance\"") && xml.contains("slower than the baseline")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
