//! JUnit XML for CI systems: a test case per op × dtypes × backend, per model
//! check and per bench metric.

use std::collections::BTreeMap;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::compare::{CiReport, Comparison};

/// One test case: its failure text (first line as the message, all of it as
/// the body) or skip reason, if any.
fn case(
    class: String,
    name: String,
    seconds: f64,
    failure: Option<String>,
    skipped: Option<String>,
) -> TestCase {
    let status = match (failure, skipped) {
        (Some(text), _) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(text.lines().next().unwrap_or(""));
            s.set_description(text);
            s
        }
        (None, Some(why)) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(why);
            s
        }
        (None, None) => TestCaseStatus::success(),
    };
    let mut c = TestCase::new(name, status);
    c.set_classname(class);
    // quick-junit rounds `time` to milliseconds; bench medians of small ops
    // are microseconds, so the attribute is written with glmhal's precision.
    c.extra
        .insert("time".into(), format!("{seconds:.6}").into());
    c
}

fn suite(name: &str, cases: Vec<TestCase>) -> TestSuite {
    let mut s = TestSuite::new(name);
    s.add_test_cases(cases);
    s
}

/// The JUnit document of a `glmhal ci` run.
pub fn junit(now: &CiReport, cmp: &Comparison) -> String {
    // Conformance: cases grouped by backend, op and dtypes.
    let mut groups: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    let mut unsupported: BTreeMap<(String, String, String), (usize, usize)> = BTreeMap::new();
    for c in &now.cases {
        let key = (c.backend.clone(), c.op.clone(), c.dtypes.join(","));
        let problems = groups.entry(key.clone()).or_default();
        let counts = unsupported.entry(key).or_default();
        counts.1 += 1;
        match c.status.as_str() {
            "fail" | "error" => problems.push(format!(
                "{}: {} (bound ratio {})",
                c.case,
                c.status,
                c.bound_ratio.map_or("-".into(), |e| format!("{e:.3e}"))
            )),
            "unsupported" => counts.0 += 1,
            _ => {}
        }
        if let Some(f) = cmp
            .numeric
            .iter()
            .find(|f| f.backend == c.backend && f.name == c.case)
        {
            problems.push(format!("{}: {}", c.case, f.detail));
        }
    }
    let conformance: Vec<TestCase> = groups
        .into_iter()
        .map(|((backend, op, dtypes), problems)| {
            let (unsup, total) = unsupported[&(backend.clone(), op.clone(), dtypes.clone())];
            case(
                format!("conformance.{backend}"),
                format!("{op} [{dtypes}]"),
                0.0,
                (!problems.is_empty()).then(|| problems.join("\n")),
                (unsup == total).then(|| "unsupported on this device".to_string()),
            )
        })
        .collect();
    let models: Vec<TestCase> = now
        .models
        .iter()
        .map(|m| {
            let drift = cmp
                .numeric
                .iter()
                .find(|f| f.backend == m.backend && f.name == format!("model:{}", m.model));
            case(
                format!("models.{}", m.backend),
                m.model.clone(),
                0.0,
                match (m.status.as_str(), drift) {
                    (_, Some(f)) => Some(f.detail.clone()),
                    ("fail" | "error", None) => {
                        Some(format!("{} (max error {:.3e})", m.status, m.max_abs_error))
                    }
                    _ => None,
                },
                (m.status == "unsupported").then(|| "unsupported".to_string()),
            )
        })
        .collect();
    let bench: Vec<TestCase> = now
        .bench
        .metrics()
        .iter()
        .map(|m| {
            let delta = cmp
                .deltas
                .iter()
                .find(|d| d.backend == m.backend && d.name == m.name);
            case(
                format!("bench.{}", m.backend),
                m.name.clone(),
                m.stats.median_s,
                delta.filter(|d| d.regressed).map(|d| {
                    format!(
                        "{:.2}× slower than the baseline ({:.3} ms → {:.3} ms; allowed {:.2}×)",
                        d.ratio,
                        d.baseline_s * 1e3,
                        d.now_s * 1e3,
                        1.0 + d.allowed
                    )
                }),
                None,
            )
        })
        .collect();
    let mut report = Report::new("glmhal ci");
    report.add_test_suites([
        suite("conformance", conformance),
        suite("models", models),
        suite("bench", bench),
    ]);
    // Serializing into memory has no I/O to fail, and every string went
    // through quick-junit's XmlString, which drops what XML cannot hold.
    report
        .to_string()
        .expect("a JUnit report serializes into memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{CaseRecord, ModelRecord};

    fn record(op: &str, case: &str, status: &str) -> CaseRecord {
        CaseRecord {
            backend: "cpu".into(),
            case: case.into(),
            op: op.into(),
            dtypes: vec!["f32".into()],
            status: status.into(),
            nmse: None,
            bound_ratio: Some(2.5),
        }
    }

    #[test]
    fn failures_skips_and_markup_are_written_as_junit() {
        let now = CiReport {
            cases: vec![
                record("mat_mul", "a<b & \"c\"", "fail"),
                record("mat_mul", "fine", "pass"),
                record("rope", "r", "unsupported"),
            ],
            models: vec![ModelRecord {
                backend: "cpu".into(),
                model: "tiny".into(),
                status: "pass".into(),
                max_abs_error: 0.0,
            }],
            ..CiReport::default()
        };
        let xml = junit(&now, &Comparison::default());
        assert!(xml.starts_with("<?xml"), "{xml}");
        for want in [
            "<testsuites name=\"glmhal ci\"",
            "<testsuite name=\"conformance\" tests=\"2\"",
            "failures=\"1\"",
            "<testcase name=\"mat_mul [f32]\" classname=\"conformance.cpu\" time=\"0.000000\">",
            // The first line is the message, the whole text the body; markup
            // in either is escaped.
            "<failure message=\"a&lt;b &amp; &quot;c&quot;: fail (bound ratio 2.500e0)\">a&lt;b &amp;",
            "<skipped message=\"unsupported on this device\"/>",
            "<testcase name=\"tiny\" classname=\"models.cpu\" time=\"0.000000\"/>",
            "<testsuite name=\"bench\"",
        ] {
            assert!(xml.contains(want), "`{want}` not in:\n{xml}");
        }
    }
}
