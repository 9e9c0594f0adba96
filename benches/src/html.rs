//! `glmhal report`: one self-contained HTML file (no network) with a roofline
//! per backend, tokens/s across backends and models, the conformance matrix
//! as a heat map and baseline-vs-now deltas, from any mix of bench, ci and
//! conformance JSON documents.
//!
//! The charts are drawn by a small inline script into SVG. When it finishes
//! it sets `data-charts` on `<body>` to the number of charts drawn; a script
//! error sets `data-script-error` instead, so a headless browser can check
//! that the page rendered.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::compare::{CiReport, CI_SCHEMA};
use crate::schema::{BenchReport, BENCH_SCHEMA};

/// Charts the page draws.
pub const CHARTS: usize = 4;

/// Schema of conformance reports (`glmhal conformance --json`).
const CONFORMANCE_SCHEMA: &str = "glmhal.conformance/2";

#[derive(Default, Serialize)]
struct Data {
    sources: Vec<String>,
    points: Vec<Point>,
    peaks: Vec<PeakLine>,
    tokens: Vec<TokenBar>,
    heat: Vec<HeatCell>,
    deltas: Vec<DeltaBar>,
}

#[derive(Serialize)]
struct Point {
    backend: String,
    label: String,
    intensity: f64,
    gflops: f64,
}

#[derive(Serialize)]
struct PeakLine {
    backend: String,
    gflops: Option<f64>,
    gbps: Option<f64>,
    source: String,
}

#[derive(Serialize)]
struct TokenBar {
    backend: String,
    model: String,
    phase: String,
    tps: f64,
}

#[derive(Default, Serialize)]
struct HeatCell {
    backend: String,
    op: String,
    pass: usize,
    fail: usize,
    unsupported: usize,
    total: usize,
}

#[derive(Serialize)]
struct DeltaBar {
    backend: String,
    name: String,
    ratio: f64,
    allowed: f64,
    regressed: bool,
}

impl Data {
    fn add_bench(&mut self, b: &BenchReport, source: &str) {
        let series = |backend: &str| format!("{backend} · {source}");
        for m in &b.ops {
            if m.bytes > 0.0 && m.gflops > 0.0 {
                self.points.push(Point {
                    backend: series(&m.backend),
                    label: format!("{} {}", m.op, m.label),
                    intensity: m.flops / m.bytes,
                    gflops: m.gflops,
                });
            }
        }
        for p in &b.peaks {
            self.peaks.push(PeakLine {
                backend: series(&p.backend),
                gflops: p.flops.map(|f| f / 1e9),
                gbps: p.bytes_per_s.map(|b| b / 1e9),
                source: p.source.clone(),
            });
        }
        for m in &b.models {
            self.tokens.push(TokenBar {
                backend: series(&m.backend),
                model: m.model.clone(),
                phase: format!("prefill {}", m.prompt_tokens),
                tps: m.prefill_tps,
            });
            for d in &m.decode {
                self.tokens.push(TokenBar {
                    backend: series(&m.backend),
                    model: m.model.clone(),
                    phase: format!("decode batch {}", d.batch),
                    tps: d.tps,
                });
            }
        }
    }

    fn add_cases<'a>(
        &mut self,
        cases: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
        source: &str,
    ) {
        let mut cells: BTreeMap<(String, String), HeatCell> = BTreeMap::new();
        for (backend, op, status) in cases {
            let column = format!("{backend} · {source}");
            let cell = cells
                .entry((op.to_string(), column.clone()))
                .or_insert_with(|| HeatCell {
                    backend: column,
                    op: op.to_string(),
                    ..Default::default()
                });
            cell.total += 1;
            match status {
                "pass" => cell.pass += 1,
                "unsupported" => cell.unsupported += 1,
                _ => cell.fail += 1,
            }
        }
        self.heat.extend(cells.into_values());
    }
}

/// The page for `inputs` (name, parsed JSON). Unknown documents are errors.
pub fn report(inputs: &[(String, Value)]) -> Result<String, String> {
    let mut data = Data::default();
    for (name, doc) in inputs {
        let schema = doc.get("schema").and_then(Value::as_str).unwrap_or("");
        // Series are named by backend and document, so runs side by side stay apart.
        let label = name.trim_end_matches(".json").to_string();
        match schema {
            BENCH_SCHEMA => {
                let b: BenchReport = serde_json::from_value(doc.clone())
                    .map_err(|e| format!("{name}: not a valid {BENCH_SCHEMA} document: {e}"))?;
                data.add_bench(&b, &label);
            }
            CI_SCHEMA => {
                let c: CiReport = serde_json::from_value(doc.clone())
                    .map_err(|e| format!("{name}: not a valid {CI_SCHEMA} document: {e}"))?;
                data.add_bench(&c.bench, &label);
                data.add_cases(
                    c.cases
                        .iter()
                        .map(|r| (r.backend.as_str(), r.op.as_str(), r.status.as_str())),
                    &label,
                );
                if let Some(cmp) = &c.comparison {
                    data.deltas.extend(cmp.deltas.iter().map(|d| DeltaBar {
                        backend: format!("{} · {label}", d.backend),
                        name: d.name.clone(),
                        ratio: d.ratio,
                        allowed: d.allowed,
                        regressed: d.regressed,
                    }));
                }
            }
            CONFORMANCE_SCHEMA => {
                let results = doc
                    .get("results")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("{name}: a conformance report without results"))?;
                let field = |r: &'_ Value, k: &str| -> String {
                    r.get(k).and_then(Value::as_str).unwrap_or("").to_string()
                };
                let rows: Vec<(String, String, String)> = results
                    .iter()
                    .map(|r| (field(r, "backend"), field(r, "op"), field(r, "status")))
                    .collect();
                data.add_cases(
                    rows.iter().map(|(b, o, s)| (b.as_str(), o.as_str(), s.as_str())),
                    &label,
                );
            }
            other => {
                return Err(format!(
                    "{name}: unknown document schema `{other}` (expected {BENCH_SCHEMA}, {CI_SCHEMA} or {CONFORMANCE_SCHEMA})"
                ))
            }
        }
        data.sources.push(name.clone());
    }
    let json = serde_json::to_string(&data).map_err(|e| e.to_string())?;
    // Inside <script>, "</" would end the element.
    let json = json.replace("</", "<\\/");
    Ok(PAGE
        .replace("/*DATA*/", &json)
        .replace("/*CHARTS*/", &CHARTS.to_string()))
}

const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>glmhal report</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.chart { border: 1px solid #ddd; padding: 8px; background: #fff; }
.note { color: #666; font-size: 12px; }
#error { display: none; background: #fdd; border: 1px solid #c00; padding: 8px; }
svg text { font: 11px system-ui, sans-serif; }
</style></head>
<body>
<h1>glmhal report</h1>
<div id="error"></div>
<p class="note" id="sources"></p>
<h2>Roofline</h2><p class="note">Each op shape at its arithmetic intensity (FLOP per byte moved) and achieved GFLOP/s; lines are each device's peak (vendor figures, or the best this run measured).</p><div class="chart" id="roofline"></div>
<h2>Tokens per second</h2><div class="chart" id="tokens"></div>
<h2>Conformance</h2><p class="note">Cases passed per op and backend; red is any failure, grey all unsupported.</p><div class="chart" id="heat"></div>
<h2>Against the baseline</h2><p class="note">Median time relative to the baseline; red bars are slower than allowed.</p><div class="chart" id="deltas"></div>
<script id="data" type="application/json">/*DATA*/</script>
<script>
"use strict";
window.onerror = function (msg) {
  document.body.setAttribute("data-script-error", String(msg));
  const e = document.getElementById("error");
  e.style.display = "block";
  e.textContent = "Script error: " + msg;
};
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const data = JSON.parse(document.getElementById("data").textContent);
const backends = [...new Set([].concat(
  data.points.map(p => p.backend), data.peaks.map(p => p.backend),
  data.tokens.map(t => t.backend), data.heat.map(h => h.backend)))].sort();
const color = b => COLORS[Math.max(0, backends.indexOf(b)) % COLORS.length];

function el(tag, attrs, parent, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
function svg(id, w, h) {
  const s = el("svg", { width: w, height: h, viewBox: "0 0 " + w + " " + h });
  document.getElementById(id).appendChild(s);
  return s;
}
function empty(s, w, h, what) {
  el("text", { x: w / 2, y: h / 2, "text-anchor": "middle", fill: "#888" }, s, "no " + what + " in these inputs");
}
function legend(s, x, y) {
  backends.forEach((b, i) => {
    el("rect", { x: x, y: y + i * 16, width: 10, height: 10, fill: color(b) }, s);
    el("text", { x: x + 14, y: y + i * 16 + 9 }, s, b);
  });
}
const fmt = v => v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toPrecision(2);

function roofline() {
  const W = 1000, H = 460, L = 70, R = 180, T = 20, B = 50;
  const s = svg("roofline", W, H);
  if (!data.points.length) { empty(s, W, H, "op measurements"); return; }
  const xs = data.points.map(p => p.intensity), ys = data.points.map(p => p.gflops);
  data.peaks.forEach(p => { if (p.gflops) ys.push(p.gflops); });
  let x0 = Math.log10(Math.min(...xs) / 2), x1 = Math.log10(Math.max(...xs) * 2);
  let y0 = Math.log10(Math.min(...ys) / 2), y1 = Math.log10(Math.max(...ys) * 2);
  if (x1 - x0 < 1) x1 = x0 + 1;
  if (y1 - y0 < 1) y1 = y0 + 1;
  const X = v => L + (Math.log10(v) - x0) / (x1 - x0) * (W - L - R);
  const Y = v => H - B - (Math.log10(v) - y0) / (y1 - y0) * (H - T - B);
  el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#444" }, s);
  el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#444" }, s);
  for (let e = Math.ceil(x0); e <= x1; e++) {
    el("text", { x: X(10 ** e), y: H - B + 16, "text-anchor": "middle" }, s, fmt(10 ** e));
  }
  for (let e = Math.ceil(y0); e <= y1; e++) {
    el("text", { x: L - 6, y: Y(10 ** e) + 4, "text-anchor": "end" }, s, fmt(10 ** e));
  }
  el("text", { x: (L + W - R) / 2, y: H - 10, "text-anchor": "middle" }, s, "FLOP per byte");
  el("text", { x: 14, y: (T + H - B) / 2, transform: "rotate(-90 14 " + (T + H - B) / 2 + ")", "text-anchor": "middle" }, s, "GFLOP/s");
  data.peaks.forEach(p => {
    if (!p.gflops || !p.gbps) return;
    const pts = [];
    for (let i = 0; i <= 40; i++) {
      const x = 10 ** (x0 + (x1 - x0) * i / 40);
      pts.push(X(x) + "," + Y(Math.max(10 ** y0, Math.min(p.gflops, p.gbps * x))));
    }
    el("polyline", { points: pts.join(" "), fill: "none", stroke: color(p.backend), "stroke-dasharray": "5,4" }, s);
  });
  data.points.forEach(p => {
    const c = el("circle", { cx: X(p.intensity), cy: Y(p.gflops), r: 4, fill: color(p.backend), "fill-opacity": 0.8 }, s);
    el("title", {}, c, p.backend + " " + p.label + ": " + fmt(p.gflops) + " GFLOP/s at " + fmt(p.intensity) + " FLOP/B");
  });
  legend(s, W - R + 20, T);
}

function tokens() {
  const rows = data.tokens.slice().sort((a, b) =>
    (a.model + a.phase + a.backend).localeCompare(b.model + b.phase + b.backend));
  const W = 1000, L = 330, R = 90, rowH = 18, H = Math.max(80, rows.length * rowH + 40);
  const s = svg("tokens", W, H);
  if (!rows.length) { empty(s, W, H, "model measurements"); return; }
  const max = Math.max(...rows.map(r => r.tps));
  rows.forEach((r, i) => {
    const y = 10 + i * rowH;
    el("text", { x: L - 8, y: y + 12, "text-anchor": "end" }, s, r.model + " · " + r.phase + " · " + r.backend);
    const w = Math.max(1, r.tps / max * (W - L - R));
    el("rect", { x: L, y: y + 2, width: w, height: rowH - 5, fill: color(r.backend) }, s);
    el("text", { x: L + w + 6, y: y + 12 }, s, fmt(r.tps) + " tok/s");
  });
}

function heat() {
  const ops = [...new Set(data.heat.map(h => h.op))];
  const cols = [...new Set(data.heat.map(h => h.backend))].sort();
  const L = 150, cw = 130, rh = 22, T = 30;
  const W = Math.max(400, L + cols.length * cw + 20), H = Math.max(80, T + ops.length * rh + 10);
  const s = svg("heat", W, H);
  if (!data.heat.length) { empty(s, W, H, "conformance results"); return; }
  cols.forEach((b, j) => el("text", { x: L + j * cw + cw / 2, y: 20, "text-anchor": "middle" }, s, b));
  ops.forEach((op, i) => {
    const y = T + i * rh;
    el("text", { x: L - 8, y: y + 15, "text-anchor": "end" }, s, op);
    cols.forEach((b, j) => {
      const h = data.heat.find(c => c.op === op && c.backend === b);
      let fill = "#eee", label = "-";
      if (h) {
        label = h.pass + "/" + h.total;
        if (h.fail > 0) fill = "hsl(0, 75%, " + (45 + 40 * h.pass / h.total) + "%)";
        else if (h.pass === 0) fill = "#ccc";
        else fill = "hsl(120, 55%, " + (85 - 40 * h.pass / h.total) + "%)";
      }
      el("rect", { x: L + j * cw, y: y, width: cw - 4, height: rh - 3, fill: fill }, s);
      el("text", { x: L + j * cw + cw / 2, y: y + 14, "text-anchor": "middle" }, s, label);
    });
  });
}

function deltas() {
  const rows = data.deltas;
  const W = 1000, L = 420, rowH = 18, H = Math.max(80, rows.length * rowH + 40);
  const s = svg("deltas", W, H);
  if (!rows.length) { empty(s, W, H, "baseline comparisons"); return; }
  const span = Math.max(0.5, ...rows.map(r => Math.abs(r.ratio - 1)));
  const mid = L + (W - L - 80) / 2, half = (W - L - 80) / 2;
  el("line", { x1: mid, y1: 0, x2: mid, y2: H, stroke: "#444" }, s);
  rows.forEach((r, i) => {
    const y = 10 + i * rowH, d = r.ratio - 1;
    el("text", { x: L - 8, y: y + 12, "text-anchor": "end" }, s, r.backend + " " + r.name);
    const w = Math.max(1, Math.abs(d) / span * half);
    el("rect", { x: d >= 0 ? mid : mid - w, y: y + 2, width: w, height: rowH - 5, fill: r.regressed ? "#d62728" : "#7f7f7f" }, s);
    el("text", { x: mid + half + 8, y: y + 12 }, s, (d >= 0 ? "+" : "") + (100 * d).toFixed(1) + "%");
  });
}

document.getElementById("sources").textContent = "Inputs: " + data.sources.join(", ");
let drawn = 0;
for (const chart of [roofline, tokens, heat, deltas]) { chart(); drawn++; }
if (drawn !== /*CHARTS*/) throw new Error("drew " + drawn + " charts");
document.body.setAttribute("data-charts", String(drawn));
</script>
</body></html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_documents_are_errors_and_data_cannot_close_the_script() {
        let bad = serde_json::json!({"schema": "something/9"});
        let err = report(&[("x.json".into(), bad)]).unwrap_err();
        assert!(
            err.contains("x.json") && err.contains("something/9"),
            "{err}"
        );
        let conf = serde_json::json!({
            "schema": "glmhal.conformance/2",
            "results": [{"backend": "cpu", "op": "</script><b>", "status": "pass"}]
        });
        let html = report(&[("c.json".into(), conf)]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!html.contains("</script><b>"));
        assert!(html.contains("data-charts"));
    }
}
