//! `glmhal dump` and `glmhal diff`: the first node where two runs part.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

mod common;

use common::{glmhal, text};

/// A fresh scratch directory holding a `tiny` model in `model/`.
fn with_tiny_model(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("glmhal-diff-{name}-{}", std::process::id()));
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

#[test]
fn dumps_from_two_processes_compare_and_name_a_planted_node() {
    let (dir, model) = with_tiny_model("dumps");
    let dump = |name: &str, extra: &[&str]| {
        let path = dir.join(name);
        let mut args = vec![
            "dump",
            "--model",
            model.to_str().unwrap(),
            "--tokens",
            "3,1,4,1,5",
            "--backend",
            "cpu",
            "--steps",
            "1",
            "--out",
            path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = glmhal(&args);
        assert!(out.status.success(), "{:?}", text(&out));
        path
    };
    let clean = dump("clean", &["--tensors"]);
    let again = dump("again", &["--tensors"]);
    // The third rms_norm call of the prompt step: layer 0's mlp_norm.
    let planted = dump("planted", &["--plant", "rms-norm-eps-x10@2"]);

    let json = dir.join("diff.json");
    let out = glmhal(&[
        "diff",
        "--dump",
        clean.to_str().unwrap(),
        "--dump",
        again.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("no divergence"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    assert!(nodes.len() > 30, "{} nodes", nodes.len());
    assert!(nodes
        .iter()
        .all(|n| n["identical"] == true && n["cosine"].as_f64().unwrap() > 0.999_999));

    let out = glmhal(&[
        "diff",
        "--dump",
        clean.to_str().unwrap(),
        "--dump",
        planted.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("first divergence: prompt step node"),
        "{stdout}"
    );
    assert!(stdout.contains("`layers.0.mlp_norm`"), "{stdout}");

    // A dump never writes into a directory that holds something.
    let out = glmhal(&[
        "dump",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "1",
        "--out",
        clean.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("not empty"), "{:?}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_live_diff_names_the_node_a_mutant_was_planted_in() {
    let (dir, model) = with_tiny_model("live");
    let out = glmhal(&[
        "diff",
        "--model",
        model.to_str().unwrap(),
        "--tokens",
        "2,7,1,8",
        "--backend",
        "cpu",
        "--backend",
        "cpu",
        "--plant",
        "attention-drops-last-key@1",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("`layers.1.attention#0`"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
