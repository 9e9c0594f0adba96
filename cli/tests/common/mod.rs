//! Running the `glmhal` binary from tests.

#![allow(dead_code)] // each test file uses part of it

use std::process::{Command, Output};

/// Runs `glmhal` with `args` and the environment overrides in `env`.
pub fn glmhal_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_glmhal"));
    cmd.args(args).env_remove("GLMHAL_CPU_THREADS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the glmhal binary runs")
}

/// Runs `glmhal` with `args`.
pub fn glmhal(args: &[&str]) -> Output {
    glmhal_env(args, &[])
}

/// Stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}
