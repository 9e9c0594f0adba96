//! Reports: a console matrix, a versioned JSON document and a Markdown summary.

use std::collections::BTreeMap;

use glmhal_hal::{DeviceInfo, OpKind};
use serde::Serialize;

use crate::model_check::ModelResult;
use crate::runner::Status;
use crate::suite::{CaseResult, Filter};
use crate::tolerance::{OpTolerance, OP_TABLE};

/// Version of the JSON report layout; bumped on any incompatible change.
pub const SCHEMA: &str = "glmhal.conformance/1";

/// A backend named in a run: tested, or not, and why.
#[derive(Clone, Debug, Serialize)]
pub struct BackendEntry {
    /// Selector (`cpu`, `cuda:0`).
    pub selector: String,
    /// Whether cases ran on it.
    pub tested: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// Its device, when opened.
    pub device: Option<DeviceInfo>,
}

/// Counts of one backend's statuses.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Unsupported.
    pub unsupported: usize,
    /// Errored.
    pub error: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Pass => self.pass += 1,
            Status::Fail => self.fail += 1,
            Status::Unsupported => self.unsupported += 1,
            Status::Error => self.error += 1,
        }
    }

    /// Cases counted.
    pub fn total(&self) -> usize {
        self.pass + self.fail + self.unsupported + self.error
    }
}

/// The whole report of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Layout version: [`SCHEMA`].
    pub schema: &'static str,
    /// glmhal version that produced it.
    pub glmhal_version: &'static str,
    /// Seconds since the Unix epoch when the run finished.
    pub created_unix: u64,
    /// Base seed of the inputs.
    pub seed: u64,
    /// The case filter.
    pub filter: Filter,
    /// Every backend named, tested or not.
    pub backends: Vec<BackendEntry>,
    /// The thresholds that applied.
    pub tolerances: Vec<OpTolerance>,
    /// Status counts per backend.
    pub summary: BTreeMap<String, Counts>,
    /// Every op the run covered, for readers that check coverage.
    pub ops: Vec<OpKind>,
    /// Every case on every backend.
    pub results: Vec<CaseResult>,
    /// The built-in models on every backend.
    pub models: Vec<ModelResult>,
}

impl Report {
    /// Assembles a report.
    pub fn new(
        seed: u64,
        filter: Filter,
        backends: Vec<BackendEntry>,
        results: Vec<CaseResult>,
    ) -> Self {
        let mut summary: BTreeMap<String, Counts> = BTreeMap::new();
        for b in backends.iter().filter(|b| b.tested) {
            summary.entry(b.selector.clone()).or_default();
        }
        for r in &results {
            summary
                .entry(r.backend.clone())
                .or_default()
                .add(r.outcome.status);
        }
        let mut ops: Vec<OpKind> = results.iter().map(|r| r.op).collect();
        ops.sort();
        ops.dedup();
        Report {
            schema: SCHEMA,
            glmhal_version: env!("CARGO_PKG_VERSION"),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            seed,
            filter,
            backends,
            tolerances: OP_TABLE.to_vec(),
            summary,
            ops,
            results,
            models: Vec::new(),
        }
    }

    /// Adds model-level results.
    pub fn with_models(mut self, models: Vec<ModelResult>) -> Self {
        self.models = models;
        self
    }

    /// Any failure or error.
    pub fn failed(&self) -> bool {
        crate::suite::any_failed(&self.results)
            || self
                .models
                .iter()
                .any(|m| matches!(m.status, Status::Fail | Status::Error))
    }

    fn model_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.models.iter().map(|m| m.model.as_str()).collect();
        names.dedup();
        names
    }

    fn model_cell(&self, model: &str, backend: &str) -> String {
        match self
            .models
            .iter()
            .find(|m| m.model == model && m.backend == backend)
        {
            None => "-".into(),
            Some(m) if m.status == Status::Error => "error".into(),
            Some(m) if m.status == Status::Unsupported => "unsupported".into(),
            Some(m) => {
                let worst = m.max_abs_error.iter().cloned().fold(0.0f32, f32::max);
                let verdict = if m.status == Status::Pass {
                    "ok"
                } else {
                    "FAIL"
                };
                format!("{verdict} {worst:.0e} {}/{}", m.top1_agree, m.positions)
            }
        }
    }

    fn tested(&self) -> Vec<&str> {
        self.backends
            .iter()
            .filter(|b| b.tested)
            .map(|b| b.selector.as_str())
            .collect()
    }

    fn cell(&self, op: OpKind, backend: &str) -> Counts {
        let mut c = Counts::default();
        for r in self
            .results
            .iter()
            .filter(|r| r.op == op && r.backend == backend)
        {
            c.add(r.outcome.status);
        }
        c
    }

    /// The ops × backends matrix and the details worth reading, for a terminal.
    pub fn console(&self, colour: bool) -> String {
        let paint = |code: &str, s: String| {
            if colour {
                format!("\x1b[{code}m{s}\x1b[0m")
            } else {
                s
            }
        };
        let backends = self.tested();
        let mut out = String::new();
        let width = 18;
        out.push_str(&format!("{:<16}", "op"));
        for b in &backends {
            out.push_str(&format!("{b:>width$}"));
        }
        out.push('\n');
        for op in &self.ops {
            out.push_str(&format!("{:<16}", op.name()));
            for b in &backends {
                let c = self.cell(*op, b);
                let text = cell_text(&c);
                let padded = format!("{text:>width$}");
                let code = if c.fail + c.error > 0 {
                    "31"
                } else if c.unsupported > 0 {
                    "33"
                } else {
                    "32"
                };
                out.push_str(&paint(code, padded));
            }
            out.push('\n');
        }
        for model in self.model_names() {
            out.push_str(&format!("{:<16}", format!("model:{model}")));
            for b in &backends {
                let text = self.model_cell(model, b);
                let code = if text.starts_with("ok") {
                    "32"
                } else if text == "unsupported" {
                    "33"
                } else {
                    "31"
                };
                out.push_str(&paint(code, format!("{text:>width$}")));
            }
            out.push('\n');
        }
        out.push_str(&format!("{:<16}", "total"));
        for b in &backends {
            let c = self.summary.get(*b).cloned().unwrap_or_default();
            out.push_str(&format!("{:>width$}", cell_text(&c)));
        }
        out.push('\n');
        for b in self.backends.iter().filter(|b| !b.tested) {
            out.push_str(&paint(
                "33",
                format!(
                    "{}: not tested: {}\n",
                    b.selector,
                    b.reason.clone().unwrap_or_default()
                ),
            ));
        }
        let bad: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| matches!(r.outcome.status, Status::Fail | Status::Error))
            .collect();
        for m in self.models.iter().filter(|m| m.status != Status::Pass) {
            let (code, what) = if m.status == Status::Unsupported {
                ("33", "unsupported")
            } else {
                ("31", "failed")
            };
            let line = format!(
                "model {} on {} {what}: {}\n",
                m.model,
                m.backend,
                m.detail.clone().unwrap_or_default()
            );
            out.push_str(&paint(code, line));
        }
        if !bad.is_empty() {
            out.push_str(&paint("31", format!("\n{} failing case(s):\n", bad.len())));
            for r in bad.iter().take(40) {
                out.push_str(&format!(
                    "  [{}] {:?} {}: {}\n",
                    r.backend,
                    r.outcome.status,
                    r.case,
                    r.outcome.detail.clone().unwrap_or_default()
                ));
            }
            if bad.len() > 40 {
                out.push_str(&format!(
                    "  ... and {} more (see the JSON report)\n",
                    bad.len() - 40
                ));
            }
        }
        for (reason, n) in self.unsupported_reasons() {
            out.push_str(&paint(
                "33",
                format!("unsupported ({n} case(s)): {reason}\n"),
            ));
        }
        out
    }

    fn unsupported_reasons(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for r in self
            .results
            .iter()
            .filter(|r| r.outcome.status == Status::Unsupported)
        {
            let key = format!(
                "[{}] {}: {}",
                r.backend,
                r.op,
                r.outcome.detail.clone().unwrap_or_default()
            );
            *m.entry(key).or_insert(0) += 1;
        }
        m
    }

    /// The matrix and failures as Markdown.
    pub fn markdown(&self) -> String {
        let backends = self.tested();
        let mut s = String::from("# glmhal conformance\n\n");
        s.push_str(&format!(
            "glmhal {} · seed {:#x} · schema `{}`\n\n",
            self.glmhal_version, self.seed, self.schema
        ));
        for b in &self.backends {
            match (&b.device, b.tested) {
                (Some(d), true) => s.push_str(&format!(
                    "- **{}**: {} ({}, {})\n",
                    b.selector, d.name, d.vendor, d.architecture
                )),
                _ => s.push_str(&format!(
                    "- **{}**: not tested: {}\n",
                    b.selector,
                    b.reason.clone().unwrap_or_default()
                )),
            }
        }
        s.push_str("\nCells: passed/total, then F failed, U unsupported, E errors.\n\n| op |");
        for b in &backends {
            s.push_str(&format!(" {b} |"));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(backends.len()));
        s.push('\n');
        for op in &self.ops {
            s.push_str(&format!("| {} |", op.name()));
            for b in &backends {
                s.push_str(&format!(" {} |", cell_text(&self.cell(*op, b))));
            }
            s.push('\n');
        }
        for model in self.model_names() {
            s.push_str(&format!("| model {model} |"));
            for b in &backends {
                s.push_str(&format!(" {} |", self.model_cell(model, b)));
            }
            s.push('\n');
        }
        if !self.models.is_empty() {
            s.push_str("\nModel rows: ok/FAIL, the largest |logit error| against the reference backend, top-1 agreement over the prompt positions; greedy tokens must match too.\n");
        }
        let bad: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| matches!(r.outcome.status, Status::Fail | Status::Error))
            .collect();
        if bad.is_empty() {
            s.push_str("\nNo failures.\n");
        } else {
            s.push_str("\n## Failures\n\n| backend | case | detail |\n|---|---|---|\n");
            for r in bad {
                s.push_str(&format!(
                    "| {} | `{}` | {} |\n",
                    r.backend,
                    r.case,
                    r.outcome.detail.clone().unwrap_or_default()
                ));
            }
        }
        let reasons = self.unsupported_reasons();
        if !reasons.is_empty() {
            s.push_str("\n## Unsupported\n\n");
            for (reason, n) in reasons {
                s.push_str(&format!("- {reason} ({n} case(s))\n"));
            }
        }
        s
    }
}

fn cell_text(c: &Counts) -> String {
    let mut t = format!("{}/{}", c.pass, c.total());
    for (n, tag) in [(c.fail, "F"), (c.unsupported, "U"), (c.error, "E")] {
        if n > 0 {
            t.push_str(&format!(" {n}{tag}"));
        }
    }
    t
}
