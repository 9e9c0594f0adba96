//! JUnit XML for CI systems: a test case per op × dtypes × backend, per model
//! check and per bench metric.

use std::collections::BTreeMap;

use crate::compare::{CiReport, Comparison};

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One test case: its failure message or skip reason, if any.
struct TestCase {
    class: String,
    name: String,
    seconds: f64,
    failure: Option<String>,
    skipped: Option<String>,
}

fn suite(name: &str, cases: &[TestCase]) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let skipped = cases.iter().filter(|c| c.skipped.is_some()).count();
    let mut s = format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">\n",
        escape(name),
        cases.len()
    );
    for c in cases {
        s += &format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.6}\"",
            escape(&c.class),
            escape(&c.name),
            c.seconds
        );
        match (&c.failure, &c.skipped) {
            (Some(f), _) => {
                s += &format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(f.lines().next().unwrap_or("")),
                    escape(f)
                )
            }
            (None, Some(why)) => {
                s += &format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    escape(why)
                )
            }
            (None, None) => s += "/>\n",
        }
    }
    s + "  </testsuite>\n"
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
            TestCase {
                class: format!("conformance.{backend}"),
                name: format!("{op} [{dtypes}]"),
                seconds: 0.0,
                failure: (!problems.is_empty()).then(|| problems.join("\n")),
                skipped: (unsup == total).then(|| "unsupported on this device".to_string()),
            }
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
            TestCase {
                class: format!("models.{}", m.backend),
                name: m.model.clone(),
                seconds: 0.0,
                failure: match (m.status.as_str(), drift) {
                    (_, Some(f)) => Some(f.detail.clone()),
                    ("fail" | "error", None) => {
                        Some(format!("{} (max error {:.3e})", m.status, m.max_abs_error))
                    }
                    _ => None,
                },
                skipped: (m.status == "unsupported").then(|| "unsupported".to_string()),
            }
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
            TestCase {
                class: format!("bench.{}", m.backend),
                name: m.name.clone(),
                seconds: m.stats.median_s,
                failure: delta.filter(|d| d.regressed).map(|d| {
                    format!(
                        "{:.2}× slower than the baseline ({:.3} ms → {:.3} ms; allowed {:.2}×)",
                        d.ratio,
                        d.baseline_s * 1e3,
                        d.now_s * 1e3,
                        1.0 + d.allowed
                    )
                }),
                skipped: None,
            }
        })
        .collect();
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"glmhal ci\">\n",
    );
    s += &suite("conformance", &conformance);
    s += &suite("models", &models);
    s += &suite("bench", &bench);
    s + "</testsuites>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
