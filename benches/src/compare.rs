//! `glmhal ci`: a run (conformance results and bench metrics) compared with a
//! stored baseline of the same device fingerprint: numeric drift and speed.

use serde::{Deserialize, Serialize};

use crate::schema::{BenchReport, Fingerprint, Metric};

/// Schema of the document `glmhal ci` writes (and reads as a baseline).
pub const CI_SCHEMA: &str = "glmhal.ci/2";

/// A case's bound ratio may grow this many times before it counts as drift.
pub const ERROR_GROWTH: f64 = 10.0;

/// Bound ratios below this are rounding noise: their growth is not drift.
pub const RATIO_FLOOR: f64 = 1e-3;

/// One conformance case on one backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// Selector.
    pub backend: String,
    /// Case id.
    pub case: String,
    /// Op name.
    pub op: String,
    /// Dtypes of its tensors.
    pub dtypes: Vec<String>,
    /// `pass`, `fail`, `unsupported` or `error`.
    pub status: String,
    /// Its NMSE, where it ran (information).
    pub nmse: Option<f64>,
    /// Its worst `|error| / bound` (`None` for exact ops): what drift is judged on.
    pub bound_ratio: Option<f64>,
}

/// One built-in model check on one backend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Selector.
    pub backend: String,
    /// Model name.
    pub model: String,
    /// `pass`, `fail`, `unsupported` or `error`.
    pub status: String,
    /// Largest |logit − reference|.
    pub max_abs_error: f64,
}

/// The document `glmhal ci --json` writes; a baseline is one of these.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CiReport {
    /// Always [`CI_SCHEMA`].
    pub schema: String,
    /// glmhal version.
    pub glmhal_version: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// Every device in the run.
    pub fingerprints: Vec<Fingerprint>,
    /// Conformance cases.
    pub cases: Vec<CaseRecord>,
    /// Model checks.
    pub models: Vec<ModelRecord>,
    /// The bench set.
    pub bench: BenchReport,
    /// The comparison with the baseline, when there was one.
    #[serde(default)]
    pub comparison: Option<Comparison>,
}

/// Something that got worse.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Selector (as in this run).
    pub backend: String,
    /// Case, model or metric name.
    pub name: String,
    /// What changed, in words with the numbers.
    pub detail: String,
}

/// One metric against its baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Selector (as in this run).
    pub backend: String,
    /// Metric name.
    pub name: String,
    /// Baseline median, seconds.
    pub baseline_s: f64,
    /// This run's median, seconds.
    pub now_s: f64,
    /// now / baseline.
    pub ratio: f64,
    /// Slowdown allowed for this metric (0.25 = 25%).
    pub allowed: f64,
    /// Whether it is slower than allowed.
    pub regressed: bool,
}

/// The whole comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Cases or models that passed in the baseline and do not now, or whose error grew too much.
    pub numeric: Vec<Finding>,
    /// Metrics slower than allowed.
    pub speed: Vec<Finding>,
    /// Every metric compared.
    pub deltas: Vec<Delta>,
    /// Devices of this run the baseline has no numbers for.
    pub not_compared: Vec<String>,
}

impl CiReport {
    /// An empty report stamped now.
    pub fn new() -> Self {
        CiReport {
            schema: CI_SCHEMA.into(),
            glmhal_version: env!("CARGO_PKG_VERSION").into(),
            created_unix: crate::schema::now_unix(),
            ..Default::default()
        }
    }

    /// Cases that fail or error in this run (drift aside).
    pub fn failing_cases(&self) -> impl Iterator<Item = &CaseRecord> {
        self.cases
            .iter()
            .filter(|c| c.status == "fail" || c.status == "error")
    }
}

/// Compares `now` with `baseline`. A metric may be slower by
/// `max(speed_tolerance, 3 × (spread now + spread baseline))` before it is a
/// regression, so noisy measurements need a bigger change, and both its
/// median and its fastest run must be that much slower.
pub fn compare(baseline: &CiReport, now: &CiReport, speed_tolerance: f64) -> Comparison {
    let mut out = Comparison::default();
    for fp in &now.fingerprints {
        let Some(base_fp) = baseline.fingerprints.iter().find(|b| b.same_device(fp)) else {
            out.not_compared.push(format!(
                "{}: the baseline has no numbers for {} (driver {}, runtime {}, glmhal {})",
                fp.backend,
                fp.device,
                fp.driver.as_deref().unwrap_or("unknown"),
                fp.runtime.as_deref().unwrap_or("unknown"),
                fp.glmhal_version
            ));
            continue;
        };
        let (sel, base_sel) = (&fp.backend, &base_fp.backend);
        for case in now.cases.iter().filter(|c| &c.backend == sel) {
            let Some(base) = baseline
                .cases
                .iter()
                .find(|b| &b.backend == base_sel && b.case == case.case)
            else {
                continue;
            };
            if let Some(detail) = case_drift(base, case) {
                out.numeric.push(Finding {
                    backend: sel.clone(),
                    name: case.case.clone(),
                    detail,
                });
            }
        }
        for m in now.models.iter().filter(|m| &m.backend == sel) {
            let base = baseline
                .models
                .iter()
                .find(|b| &b.backend == base_sel && b.model == m.model);
            if let Some(base) = base.filter(|b| b.status == "pass" && m.status != "pass") {
                out.numeric.push(Finding {
                    backend: sel.clone(),
                    name: format!("model:{}", m.model),
                    detail: format!(
                        "was {} (max error {:.2e}), now {} (max error {:.2e})",
                        base.status, base.max_abs_error, m.status, m.max_abs_error
                    ),
                });
            }
        }
        let base_metrics = baseline.bench.metrics();
        for m in now
            .bench
            .metrics()
            .into_iter()
            .filter(|m| &m.backend == sel)
        {
            let Some(base) = base_metrics
                .iter()
                .find(|b| &b.backend == base_sel && b.name == m.name)
            else {
                continue;
            };
            let delta = speed_delta(base, &m, speed_tolerance);
            if delta.regressed {
                out.speed.push(Finding {
                    backend: sel.clone(),
                    name: m.name.clone(),
                    detail: format!(
                        "{:.3} ms, baseline {:.3} ms: {:.2}× (allowed {:.2}×)",
                        delta.now_s * 1e3,
                        delta.baseline_s * 1e3,
                        delta.ratio,
                        1.0 + delta.allowed
                    ),
                });
            }
            out.deltas.push(delta);
        }
    }
    out
}

impl CiReport {
    /// Checks what a stored baseline claims before anything is compared
    /// with it: every time positive and finite (a run takes some time and
    /// less than a day), spreads finite and not negative, bound ratios not
    /// negative. The error names the entry.
    pub fn validate(&self) -> Result<(), String> {
        for m in self.bench.metrics() {
            let st = &m.stats;
            let times = [
                ("median", st.median_s),
                ("min", st.min_s),
                ("max", st.max_s),
            ];
            if let Some((what, t)) = times
                .iter()
                .find(|(_, t)| !(t.is_finite() && *t > 0.0 && *t < 86_400.0))
            {
                return Err(format!(
                    "metric `{}` on {}: {what} time {t} s is not a time a run can take",
                    m.name, m.backend
                ));
            }
            if !(st.spread.is_finite() && st.spread >= 0.0) {
                return Err(format!(
                    "metric `{}` on {}: spread {} is not a spread",
                    m.name, m.backend, st.spread
                ));
            }
        }
        if let Some(c) = self
            .cases
            .iter()
            .find(|c| c.bound_ratio.is_some_and(|r| r.is_nan() || r < 0.0))
        {
            return Err(format!(
                "case `{}` on {}: bound ratio {:?} is not a ratio",
                c.case, c.backend, c.bound_ratio
            ));
        }
        Ok(())
    }
}

/// Why `now` is worse than `base` numerically, if it is.
fn case_drift(base: &CaseRecord, now: &CaseRecord) -> Option<String> {
    if base.status == "pass" && now.status != "pass" {
        return Some(format!(
            "passed in the baseline, now {} (bound ratio {})",
            now.status,
            now.bound_ratio.map_or("-".into(), |e| format!("{e:.3e}"))
        ));
    }
    let (Some(b), Some(n)) = (base.bound_ratio, now.bound_ratio) else {
        return None;
    };
    // Errors far inside the bound may wobble by orders of magnitude without meaning anything.
    (n > ERROR_GROWTH * b.max(RATIO_FLOOR))
        .then(|| format!("bound ratio grew from {b:.3e} to {n:.3e} (more than {ERROR_GROWTH}×)"))
}

/// A metric regressed when both its median and its fastest run are slower
/// than allowed: interference from other work on a shared machine inflates
/// medians now and then, but rarely the fastest run, while a real slowdown
/// moves both.
fn speed_delta(base: &Metric, now: &Metric, tolerance: f64) -> Delta {
    let allowed = tolerance.max(3.0 * (base.stats.spread + now.stats.spread));
    let ratio = now.stats.median_s / base.stats.median_s.max(1e-12);
    let fastest = now.stats.min_s / base.stats.min_s.max(1e-12);
    Delta {
        backend: now.backend.clone(),
        name: now.name.clone(),
        baseline_s: base.stats.median_s,
        now_s: now.stats.median_s,
        ratio,
        allowed,
        regressed: ratio > 1.0 + allowed && fastest > 1.0 + allowed,
    }
}

impl Comparison {
    /// A Markdown summary of the run and the comparison.
    pub fn markdown(&self, now: &CiReport) -> String {
        let mut s = String::from("# glmhal ci\n\n");
        let failing: Vec<_> = now.failing_cases().collect();
        let verdict = if !failing.is_empty() || !self.numeric.is_empty() {
            "numeric failure"
        } else if !self.speed.is_empty() {
            "speed regression"
        } else if !self.not_compared.is_empty() {
            "not compared"
        } else {
            "ok"
        };
        s += &format!("**Verdict: {verdict}**\n\n");
        s += &format!(
            "{} conformance case(s), {} failing; {} model check(s); {} metric(s) compared.\n\n",
            now.cases.len(),
            failing.len(),
            now.models.len(),
            self.deltas.len()
        );
        for n in &self.not_compared {
            s += &format!("- not compared: {n}\n");
        }
        if !failing.is_empty() {
            s += "\n## Failing cases\n\n| backend | case | status |\n|---|---|---|\n";
            for c in &failing {
                s += &format!("| {} | {} | {} |\n", c.backend, c.case, c.status);
            }
        }
        for (title, list) in [
            ("Numeric drift", &self.numeric),
            ("Speed regressions", &self.speed),
        ] {
            if !list.is_empty() {
                s += &format!("\n## {title}\n\n| backend | what | detail |\n|---|---|---|\n");
                for f in list {
                    s += &format!("| {} | {} | {} |\n", f.backend, f.name, f.detail);
                }
            }
        }
        if !self.deltas.is_empty() {
            s += "\n## Speed against the baseline\n\n| backend | metric | baseline ms | now ms | ratio | allowed |\n|---|---|---|---|---|---|\n";
            for d in &self.deltas {
                s += &format!(
                    "| {} | {} | {:.3} | {:.3} | {:.2}{} | {:.2} |\n",
                    d.backend,
                    d.name,
                    d.baseline_s * 1e3,
                    d.now_s * 1e3,
                    d.ratio,
                    if d.regressed { " ⚠" } else { "" },
                    1.0 + d.allowed
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Stats;
    use crate::schema::OpMeasurement;

    fn fingerprint(backend: &str, driver: &str) -> Fingerprint {
        Fingerprint {
            backend: backend.into(),
            device: "Test device".into(),
            driver: Some(driver.into()),
            runtime: None,
            glmhal_version: "0.1.0".into(),
        }
    }

    fn report(driver: &str, status: &str, ratio: f64, median_ms: f64, spread: f64) -> CiReport {
        let mut r = CiReport::new();
        r.fingerprints = vec![fingerprint("cpu", driver)];
        r.cases = vec![CaseRecord {
            backend: "cpu".into(),
            case: "mat_mul f32[2,2]".into(),
            op: "mat_mul".into(),
            dtypes: vec!["f32".into()],
            status: status.into(),
            nmse: Some(ratio * 1e-6),
            bound_ratio: Some(ratio),
        }];
        let stats = Stats {
            median_s: median_ms / 1e3,
            spread,
            min_s: median_ms / 1e3,
            max_s: median_ms / 1e3,
            samples: 9,
        };
        r.bench.ops = vec![OpMeasurement::new(
            "cpu",
            "mat_mul",
            "ci qkv decode f16".into(),
            String::new(),
            1.0,
            1.0,
            stats,
        )];
        r
    }

    #[test]
    fn the_same_numbers_pass() {
        let base = report("1", "pass", 1e-9, 2.0, 0.01);
        let c = compare(&base, &base.clone(), 0.25);
        assert!(c.numeric.is_empty() && c.speed.is_empty() && c.not_compared.is_empty());
        assert_eq!(c.deltas.len(), 1);
    }

    #[test]
    fn a_failure_or_tenfold_error_is_numeric_drift() {
        let base = report("1", "pass", 1e-4, 2.0, 0.01);
        let failed = compare(&base, &report("1", "fail", 3.0, 2.0, 0.01), 0.25);
        assert_eq!(failed.numeric.len(), 1, "{failed:?}");
        let grew = compare(&base, &report("1", "pass", 0.2, 2.0, 0.01), 0.25);
        assert_eq!(grew.numeric.len(), 1, "{grew:?}");
        assert!(grew.numeric[0].detail.contains("grew"));
        // Far inside the bound, growth is noise.
        let tiny = compare(&base, &report("1", "pass", 5e-3, 2.0, 0.01), 0.25);
        assert!(tiny.numeric.is_empty(), "{tiny:?}");
    }

    #[test]
    fn slowdowns_beyond_noise_are_regressions() {
        let base = report("1", "pass", 1e-9, 2.0, 0.01);
        assert_eq!(
            compare(&base, &report("1", "pass", 1e-9, 3.0, 0.01), 0.25)
                .speed
                .len(),
            1
        );
        assert!(compare(&base, &report("1", "pass", 1e-9, 2.3, 0.01), 0.25)
            .speed
            .is_empty());
        // A noisy metric gets more room: 3 × (0.2 + 0.01).
        assert!(compare(&base, &report("1", "pass", 1e-9, 3.0, 0.2), 0.25)
            .speed
            .is_empty());
    }

    #[test]
    fn baselines_with_impossible_times_are_refused() {
        assert!(report("1", "pass", 1e-4, 2.0, 0.01).validate().is_ok());
        for ms in [0.0, -5.0, 1e308, f64::NAN] {
            let err = report("1", "pass", 1e-4, ms, 0.01).validate().unwrap_err();
            assert!(
                err.contains("ci qkv decode f16") && err.contains("time"),
                "{err}"
            );
        }
        assert!(report("1", "pass", 1e-4, 2.0, -1.0).validate().is_err());
        assert!(report("1", "pass", -1.0, 2.0, 0.01).validate().is_err());
    }

    #[test]
    fn other_devices_are_not_compared() {
        let base = report("1", "pass", 1e-9, 2.0, 0.01);
        let c = compare(&base, &report("2", "fail", 1.0, 9.0, 0.0), 0.25);
        assert!(c.numeric.is_empty() && c.speed.is_empty());
        assert_eq!(c.not_compared.len(), 1);
        assert!(
            c.not_compared[0].contains("driver 2"),
            "{:?}",
            c.not_compared
        );
    }
}
