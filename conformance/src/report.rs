//! Reports: a console matrix, a versioned JSON document and a Markdown summary.

use std::collections::BTreeMap;

use glmhal_hal::{DeviceInfo, OpKind};
use serde::Serialize;

use crate::agreement::Agreement;
use crate::model_check::{pairs, ModelPair, ModelResult};
use crate::rules::{OpRule, OP_TABLE};
use crate::runner::Status;
use crate::suite::{CaseResult, Filter, Run};

/// Version of the JSON report layout; bumped on any incompatible change.
pub const SCHEMA: &str = "glmhal.conformance/2";

/// A worst bound ratio below this means the bound is over 1000 times
/// looser than the worst honest element: too loose to catch much.
pub const LOOSE_RATIO: f64 = 1e-3;

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
    /// Every seed run (the base seed, then the next ones for `--seeds N`).
    pub seeds: Vec<u64>,
    /// The case filter.
    pub filter: Filter,
    /// Every backend named, tested or not.
    pub backends: Vec<BackendEntry>,
    /// How each op is judged.
    pub rules: Vec<OpRule>,
    /// Status counts per backend.
    pub summary: BTreeMap<String, Counts>,
    /// Every op the run covered, for readers that check coverage.
    pub ops: Vec<OpKind>,
    /// What each backend declared it computes in, and for which ops.
    pub declarations: Vec<Declaration>,
    /// Per backend, op and dtype class, the worst bound ratio.
    pub tightness: Vec<Tightness>,
    /// Per op and pair of backends, how close they came to each other.
    pub agreement: Vec<PairSummary>,
    /// Every pair comparison where two backends cannot both be right.
    pub disagreements: Vec<Agreement>,
    /// Every case on every backend.
    pub results: Vec<CaseResult>,
    /// The built-in models on every backend.
    pub models: Vec<ModelResult>,
    /// Every pair of backends on every built-in model: hidden states layer
    /// by layer and the last logits.
    pub model_pairs: Vec<ModelPair>,
}

/// One declaration a backend made, with the ops it made it for.
#[derive(Clone, Debug, Serialize)]
pub struct Declaration {
    /// Backend selector.
    pub backend: String,
    /// The declaration, in words.
    pub precision: String,
    /// The ops it was declared for.
    pub ops: Vec<OpKind>,
    /// Cases judged under it.
    pub cases: usize,
}

/// The worst bound ratio of one backend over one op and dtype class.
#[derive(Clone, Debug, Serialize)]
pub struct Tightness {
    /// Backend selector.
    pub backend: String,
    /// Op.
    pub op: OpKind,
    /// Dtype class (`f32+q4_0`).
    pub dtypes: String,
    /// Cases compared (over every seed).
    pub cases: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Largest `|error| / bound` over them (`None`: the op is exact).
    pub worst_ratio: Option<f64>,
    /// The case where it is reached.
    pub worst_case: String,
}

/// How close two backends came on one op.
#[derive(Clone, Debug, Serialize)]
pub struct PairSummary {
    /// Op.
    pub op: OpKind,
    /// One backend.
    pub a: String,
    /// The other.
    pub b: String,
    /// Cases both ran (over every seed).
    pub cases: usize,
    /// Largest `|a − b| / (bound_a + bound_b)`.
    pub worst_ratio: f64,
    /// Cases where it exceeds 1.
    pub disagreements: usize,
}

impl Report {
    /// Assembles a report.
    pub fn new(seeds: &[u64], filter: Filter, backends: Vec<BackendEntry>, run: Run) -> Self {
        let Run { results, agreement } = run;
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
            seed: seeds.first().copied().unwrap_or(crate::DEFAULT_SEED),
            seeds: seeds.to_vec(),
            filter,
            backends,
            rules: OP_TABLE.to_vec(),
            summary,
            ops,
            declarations: declarations(&results),
            tightness: tightness(&results),
            agreement: pair_summaries(&agreement),
            disagreements: agreement.into_iter().filter(|a| !a.agrees()).collect(),
            results,
            models: Vec::new(),
            model_pairs: Vec::new(),
        }
    }

    /// Adds model-level results.
    pub fn with_models(mut self, models: Vec<ModelResult>) -> Self {
        self.model_pairs = pairs(&models);
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
                let verdict = if m.status == Status::Pass {
                    "ok"
                } else {
                    "FAIL"
                };
                let ratio = m.logit_bound_ratio.map_or("-".into(), ratio_text);
                format!("{verdict} ≤{ratio} {}/{}", m.top1_agree, m.positions)
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

    /// The worst bound ratio of `backend` on `op` over every case.
    fn worst_ratio(&self, op: OpKind, backend: &str) -> Option<f64> {
        self.tightness
            .iter()
            .filter(|t| t.op == op && t.backend == backend)
            .filter_map(|t| t.worst_ratio)
            .reduce(f64::max)
    }

    fn ratio_cell(&self, op: OpKind, backend: &str) -> String {
        let c = cell_text(&self.cell(op, backend));
        match self.worst_ratio(op, backend) {
            Some(r) => format!("{c} ≤{}", ratio_text(r)),
            None if self
                .rules
                .iter()
                .any(|r| r.op == op && r.rule == glmhal_ops::bounds::Rule::Exact) =>
            {
                format!("{c} =")
            }
            None => c,
        }
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
        let mut out = self.console_matrix(colour);
        out.push_str(&self.console_notes(colour));
        out.push_str(&self.console_problems(colour));
        out
    }

    /// The matrix: a row per op and per model, a total row, and the legend.
    fn console_matrix(&self, colour: bool) -> String {
        let paint = |code: &str, s: String| painted(colour, code, s);
        let backends = self.tested();
        let mut out = String::new();
        let width = 22;
        out.push_str(&format!("{:<16}", "op"));
        for b in &backends {
            out.push_str(&format!("{b:>width$}"));
        }
        out.push('\n');
        for op in &self.ops {
            out.push_str(&format!("{:<16}", op.name()));
            for b in &backends {
                let c = self.cell(*op, b);
                let text = self.ratio_cell(*op, b);
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
        out.push_str(
            "cells: passed/total, then F failed, U unsupported, E errors; ≤r the worst |error|/bound, = exact\n",
        );
        out
    }

    /// Declared precisions, agreement, model pairs and backends left untested.
    fn console_notes(&self, colour: bool) -> String {
        let paint = |code: &str, s: String| painted(colour, code, s);
        let mut out = String::new();
        for d in &self.declarations {
            out.push_str(&format!(
                "{} declares {} ({})\n",
                d.backend,
                d.precision,
                op_list(d)
            ));
        }
        if !self.agreement.is_empty() {
            out.push_str(&self.agreement_console());
        }
        for p in &self.model_pairs {
            let worst = p.layers.iter().map(|l| l.rel_l2).fold(0.0f64, f64::max);
            out.push_str(&format!(
                "model {} {}~{}: logits {} of the sum of their bounds, hidden states within {worst:.1e} (relative L2, worst layer)\n",
                p.model,
                p.a,
                p.b,
                ratio_text(p.logits_ratio)
            ));
        }
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
        out
    }

    /// Models and cases that did not pass, and why cases were unsupported.
    fn console_problems(&self, colour: bool) -> String {
        let paint = |code: &str, s: String| painted(colour, code, s);
        let mut out = String::new();
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
            "glmhal {} · seed {:#x} ({} seed(s)) · schema `{}`\n\n",
            self.glmhal_version,
            self.seed,
            self.seeds.len(),
            self.schema
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
        s.push_str("\nCells: passed/total, then F failed, U unsupported, E errors; ≤r is the worst |error| / bound over the op's cases (1 is the bound), = an exact op.\n\n| op |");
        for b in &backends {
            s.push_str(&format!(" {b} |"));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(backends.len()));
        s.push('\n');
        for op in &self.ops {
            s.push_str(&format!("| {} |", op.name()));
            for b in &backends {
                s.push_str(&format!(" {} |", self.ratio_cell(*op, b)));
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
            s.push_str("\nModel rows: ok/FAIL, the last position's worst |logit − reference| / bound, top-1 agreement over the prompt positions; every node of the prompt step must be within its bound on its own inputs, and greedy tokens must match too.\n");
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
        if !self.declarations.is_empty() {
            s.push_str("\n## Declarations\n\nWhat each backend declared it computes in (the bounds follow from it).\n\n| backend | declares | ops (cases) |\n|---|---|---|\n");
            for d in &self.declarations {
                s.push_str(&format!(
                    "| {} | {} | {} |\n",
                    d.backend,
                    d.precision,
                    op_list(d)
                ));
            }
        }
        if !self.model_pairs.is_empty() {
            s.push_str("\n## Models, backend against backend\n\nThe last prompt position: the largest relative L2 difference of the hidden states over the layers, and the last logits' worst |a − b| / (bound_a + bound_b) (at most 1 when both are right).\n\n| model | pair | hidden states, worst ‖a − b‖/‖a‖ (layer) | logits ratio |\n|---|---|---|---|\n");
            for p in &self.model_pairs {
                let worst = p
                    .layers
                    .iter()
                    .max_by(|x, y| x.rel_l2.total_cmp(&y.rel_l2))
                    .map_or("-".to_string(), |l| {
                        format!("{:.2e} ({})", l.rel_l2, l.layer)
                    });
                s.push_str(&format!(
                    "| {} | {} ~ {} | {worst} | {} |\n",
                    p.model,
                    p.a,
                    p.b,
                    ratio_text(p.logits_ratio)
                ));
            }
        }
        if !self.agreement.is_empty() {
            s.push_str("\n## Backend against backend\n\nPer op and pair, the worst |a − b| / (bound_a + bound_b) over the cases both ran: at most 1 when both are right.\n\n");
            s.push_str(&self.agreement_markdown());
        }
        s.push_str("\n## Tightness\n\n");
        s.push_str(&self.tightness_markdown());
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

impl Report {
    /// Per op, the worst agreement ratio of each backend pair, for a terminal.
    fn agreement_console(&self) -> String {
        let pairs = self.pairs();
        let mut out = format!("\n{:<16}", "agreement");
        for (a, b) in &pairs {
            out.push_str(&format!("{:>22}", format!("{a}~{b}")));
        }
        out.push('\n');
        for op in &self.ops {
            out.push_str(&format!("{:<16}", op.name()));
            for pair in &pairs {
                out.push_str(&format!("{:>22}", self.pair_cell(*op, pair)));
            }
            out.push('\n');
        }
        out.push_str(
            "agreement: worst |a − b| / (bound_a + bound_b); above 1 one of them is wrong\n",
        );
        out
    }

    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .agreement
            .iter()
            .map(|p| (p.a.clone(), p.b.clone()))
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    fn pair_cell(&self, op: OpKind, pair: &(String, String)) -> String {
        match self
            .agreement
            .iter()
            .find(|p| p.op == op && p.a == pair.0 && p.b == pair.1)
        {
            None => "-".into(),
            Some(p) if p.disagreements > 0 => format!(
                "{} DIFFER {}/{}",
                ratio_text(p.worst_ratio),
                p.disagreements,
                p.cases
            ),
            Some(p) => format!("{} ({})", ratio_text(p.worst_ratio), p.cases),
        }
    }

    /// The agreement matrix as Markdown.
    pub fn agreement_markdown(&self) -> String {
        let pairs = self.pairs();
        let mut s = String::from("| op |");
        for (a, b) in &pairs {
            s.push_str(&format!(" {a} ~ {b} |"));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(pairs.len()));
        s.push('\n');
        for op in &self.ops {
            s.push_str(&format!("| {op} |"));
            for pair in &pairs {
                s.push_str(&format!(" {} |", self.pair_cell(*op, pair)));
            }
            s.push('\n');
        }
        s
    }

    /// The tightness table: per op and dtype class, each backend's worst
    /// bound ratio, flagged where the bound is looser than 1000 times the
    /// worst honest element.
    pub fn tightness_markdown(&self) -> String {
        let backends = self.tested();
        let mut s = format!(
            "Worst |error| / bound per op and dtype class over {} seed(s); `exact` ops must match bit for bit; `0 (all exact)`: every honest element was exact, so no bound could be tighter; ⚠ marks a ratio below {LOOSE_RATIO:e}.\n\n| op | dtypes |",
            self.seeds.len()
        );
        for b in &backends {
            s.push_str(&format!(" {b} |"));
        }
        s.push_str("\n|---|---|");
        s.push_str(&"---|".repeat(backends.len()));
        s.push('\n');
        let mut classes: Vec<(OpKind, String)> = self
            .tightness
            .iter()
            .map(|t| (t.op, t.dtypes.clone()))
            .collect();
        classes.sort();
        classes.dedup();
        for (op, dtypes) in classes {
            s.push_str(&format!("| {op} | {dtypes} |"));
            for b in &backends {
                let cell = match self
                    .tightness
                    .iter()
                    .find(|t| t.op == op && t.dtypes == dtypes && t.backend == *b)
                {
                    None => "-".to_string(),
                    Some(t) => tightness_cell(t),
                };
                s.push_str(&format!(" {cell} |"));
            }
            s.push('\n');
        }
        s
    }

    /// Classes whose worst bound ratio is under [`LOOSE_RATIO`] on some backend.
    pub fn loose_classes(&self) -> Vec<&Tightness> {
        self.tightness
            .iter()
            .filter(|t| t.worst_ratio.is_some_and(|r| r > 0.0 && r < LOOSE_RATIO))
            .collect()
    }
}

fn tightness_cell(t: &Tightness) -> String {
    let mut cell = match t.worst_ratio {
        None => "exact".to_string(),
        // Every honest result was exact: no bound could be tighter.
        Some(0.0) => "0 (all exact)".to_string(),
        Some(r) if r < LOOSE_RATIO => format!("{} ⚠", ratio_text(r)),
        Some(r) => ratio_text(r),
    };
    if t.failed > 0 {
        cell.push_str(&format!(" ({} failed)", t.failed));
    }
    cell
}

/// `mat_mul, attention: 12 case(s)`.
fn op_list(d: &Declaration) -> String {
    let names: Vec<&str> = d.ops.iter().map(|o| o.name()).collect();
    format!("{}: {} case(s)", names.join(", "), d.cases)
}

/// A ratio in three significant digits.
pub(crate) fn ratio_text(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if r.is_infinite() {
        "inf".into()
    } else if (0.01..1000.0).contains(&r) {
        format!("{r:.3}")
    } else {
        format!("{r:.2e}")
    }
}

fn declarations(results: &[CaseResult]) -> Vec<Declaration> {
    let mut rows: BTreeMap<(String, String), Declaration> = BTreeMap::new();
    for r in results {
        let Some(p) = &r.outcome.precision else {
            continue;
        };
        let row = rows
            .entry((r.backend.clone(), p.describe()))
            .or_insert_with(|| Declaration {
                backend: r.backend.clone(),
                precision: p.describe(),
                ops: Vec::new(),
                cases: 0,
            });
        row.cases += 1;
        if !row.ops.contains(&r.op) {
            row.ops.push(r.op);
        }
    }
    rows.into_values().collect()
}

fn tightness(results: &[CaseResult]) -> Vec<Tightness> {
    let mut rows: BTreeMap<(String, OpKind, String), Tightness> = BTreeMap::new();
    for r in results
        .iter()
        .filter(|r| matches!(r.outcome.status, Status::Pass | Status::Fail))
    {
        let Some(errors) = &r.outcome.errors else {
            continue;
        };
        let key = (r.backend.clone(), r.op, r.dtype_class());
        let row = rows.entry(key).or_insert_with(|| Tightness {
            backend: r.backend.clone(),
            op: r.op,
            dtypes: r.dtype_class(),
            cases: 0,
            failed: 0,
            worst_ratio: None,
            worst_case: String::new(),
        });
        row.cases += 1;
        row.failed += usize::from(r.outcome.status == Status::Fail);
        if let Some(ratio) = errors.bound_ratio {
            if row.worst_ratio.is_none_or(|w| ratio > w) {
                row.worst_ratio = Some(ratio);
                row.worst_case = r.case.clone();
            }
        }
    }
    rows.into_values().collect()
}

fn pair_summaries(agreement: &[Agreement]) -> Vec<PairSummary> {
    let mut rows: BTreeMap<(OpKind, String, String), PairSummary> = BTreeMap::new();
    for a in agreement {
        let row = rows
            .entry((a.op, a.a.clone(), a.b.clone()))
            .or_insert_with(|| PairSummary {
                op: a.op,
                a: a.a.clone(),
                b: a.b.clone(),
                cases: 0,
                worst_ratio: 0.0,
                disagreements: 0,
            });
        row.cases += 1;
        row.worst_ratio = row.worst_ratio.max(a.ratio);
        row.disagreements += usize::from(!a.agrees());
    }
    rows.into_values().collect()
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

/// `s` in the ANSI colour `code` when colour is on, else as it is.
fn painted(colour: bool, code: &str, s: String) -> String {
    if colour {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s
    }
}
