//! The `glmhal` binary as users run it.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::process::{Command, Output};

fn glmhal(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glmhal"))
        .args(args)
        .env_remove("GLMHAL_CPU_THREADS")
        .output()
        .expect("the glmhal binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

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
    assert_eq!(v["schema"], "glmhal.conformance/1");
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
}

#[test]
fn unusable_backends_and_bad_arguments_are_clear_errors() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["conformance", "--backend", "cuda", "--op", "add"],
            "not compiled",
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
fn a_bad_thread_count_is_reported_not_a_panic() {
    let out = Command::new(env!("CARGO_BIN_EXE_glmhal"))
        .args(["devices"])
        .env("GLMHAL_CPU_THREADS", "lots")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("GLMHAL_CPU_THREADS") && !stderr.contains("panicked"),
        "{stdout}{stderr}"
    );
}

#[test]
fn ops_lists_the_catalogue() {
    let out = glmhal(&["ops", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), glmhal_ops::catalogue().len());
    let help = glmhal(&["--help"]);
    assert!(text(&help).0.contains("glmhal conformance"));
}
