//! Row reductions, one thread per row, f32: rms_norm, softmax, argmax.

use glmhal_hal::{Op, Result, TensorDesc};

use super::{Gpu, View};

const ROWS_WGSL: &str = r#"
struct Params { x: View, w: View, o: View, rows: u32, cols: u32, kind: u32, eps: f32, scale: f32, causal: u32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;
// The output again, as integers: argmax stores indices without passing them through f32.
@group(0) @binding(4) var<storage, read_write> oi: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r = flat(g, nw);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    if (p.kind == 0u) {
        var ss = 0.0;
        for (var c = 0u; c < p.cols; c++) { let v = x[at(p.x, base + c)]; ss += v * v; }
        let inv = 1.0 / sqrt(ss / f32(p.cols) + p.eps);
        for (var c = 0u; c < p.cols; c++) { o[at(p.o, base + c)] = x[at(p.x, base + c)] * inv * w[at(p.w, c)]; }
    } else if (p.kind == 1u) {
        var visible = p.cols;
        if (p.causal != 0u) { visible = r + p.cols - p.rows + 1u; }
        var mx = -3.4e38;
        for (var c = 0u; c < visible; c++) { mx = max(mx, x[at(p.x, base + c)] * p.scale); }
        var sum = 0.0;
        for (var c = 0u; c < visible; c++) { sum += exp(x[at(p.x, base + c)] * p.scale - mx); }
        for (var c = 0u; c < p.cols; c++) {
            var v = 0.0;
            if (c < visible) { v = exp(x[at(p.x, base + c)] * p.scale - mx) / sum; }
            o[at(p.o, base + c)] = v;
        }
    } else {
        var best = 0u;
        var bv = x[at(p.x, base)];
        for (var c = 1u; c < p.cols; c++) { let v = x[at(p.x, base + c)]; if (v > bv) { bv = v; best = c; } }
        oi[at(p.o, r)] = best;
    }
}
"#;

/// Runs rms_norm, softmax or argmax over the rows of `x`.
pub(crate) fn run(
    gpu: &Gpu,
    op: &Op,
    ins: &[TensorDesc],
    out: &TensorDesc,
    bufs: [&wgpu::Buffer; 4],
) -> Result<()> {
    let x = &ins[0];
    let (rows, cols) = (x.rows() as u32, x.last_dim() as u32);
    let (kind, eps, scale, causal) = match op {
        Op::RmsNorm { eps } => (0u32, *eps as f32, 1.0f32, 0u32),
        Op::Softmax { scale, causal } => (1, 0.0, *scale as f32, u32::from(*causal)),
        _ => (2, 0.0, 1.0, 0),
    };
    let w = if kind == 0 {
        View::of(&ins[1])?
    } else {
        View::of(x)?
    };
    let mut params = Vec::new();
    params.extend(View::of(x)?.words());
    params.extend(w.words());
    params.extend(View::of(out)?.words());
    params.extend([
        rows,
        cols,
        kind,
        eps.to_bits(),
        scale.to_bits(),
        causal,
        0,
        0,
    ]);
    gpu.dispatch("rows", ROWS_WGSL, &params, &bufs, rows)
}
