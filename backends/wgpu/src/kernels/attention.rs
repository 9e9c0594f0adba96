//! rope, kv_write and attention on f32 tensors.

use glmhal_hal::{Op, Result, RopeMode, TensorDesc};

use super::{Gpu, View};

const ATTENTION_WGSL: &str = r#"
struct Params { a: View, b: View, c: View, o: View,
    kind: u32, heads: u32, dim: u32, rot: u32, theta: f32, neox: u32, scale: f32, causal: u32,
    tokens: u32, keys: u32, kv_heads: u32, pad0: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

fn rope(e: u32) {
    // a: x [T, heads, D], b: positions [T]; one thread per output element.
    if (e >= p.tokens * p.heads * p.dim) { return; }
    let d = e % p.dim;
    let head = e - d;
    let t = e / (p.heads * p.dim);
    if (d >= p.rot) { o[at(p.o, e)] = a[at(p.a, e)]; return; }
    let half = p.rot / 2u;
    var i: u32; var first: u32; var second: u32;
    if (p.neox != 0u) { i = d % half; first = i; second = i + half; }
    else { i = d / 2u; first = 2u * i; second = 2u * i + 1u; }
    let pos = f32(bitcast<i32>(b[at(p.b, t)]));
    let angle = pos * pow(p.theta, -2.0 * f32(i) / f32(p.rot));
    let s = sin(angle);
    let co = cos(angle);
    let x0 = a[at(p.a, head + first)];
    let x1 = a[at(p.a, head + second)];
    if (d == first) { o[at(p.o, e)] = x0 * co - x1 * s; } else { o[at(p.o, e)] = x1 * co + x0 * s; }
}

fn kv_write(e: u32) {
    // a: rows [T, kv, D], b: positions [T], o: cache [C, kv, D].
    let row = p.kv_heads * p.dim;
    if (e >= p.tokens * row) { return; }
    let t = e / row;
    let pos = bitcast<u32>(b[at(p.b, t)]);
    if (pos >= p.keys) { return; }
    o[at(p.o, pos * row + e % row)] = a[at(p.a, e)];
}

// Q is scaled before the product, as GLM needs.
fn score(t: u32, h: u32, g: u32, j: u32) -> f32 {
    var s = 0.0;
    for (var d = 0u; d < p.dim; d++) {
        s += a[at(p.a, (t * p.heads + h) * p.dim + d)] * p.scale * b[at(p.b, (j * p.kv_heads + g) * p.dim + d)];
    }
    return s;
}

fn attention(e: u32) {
    // a: q [T, heads, D], b: k [S, kv, D], c: v [S, kv, D]; one thread per (t, head).
    if (e >= p.tokens * p.heads) { return; }
    let t = e / p.heads;
    let h = e % p.heads;
    let g = h / (p.heads / p.kv_heads);
    var visible = p.keys;
    if (p.causal != 0u) { visible = p.keys - p.tokens + t + 1u; }
    // Two passes: the row maximum, then exp-weighted sums (f32 throughout).
    var m = -3.4e38;
    for (var j = 0u; j < visible; j++) { m = max(m, score(t, h, g, j)); }
    var acc: array<f32, 256>;
    for (var d = 0u; d < p.dim; d++) { acc[d] = 0.0; }
    var l = 0.0;
    for (var j = 0u; j < visible; j++) {
        let w = exp(score(t, h, g, j) - m);
        l += w;
        for (var d = 0u; d < p.dim; d++) {
            acc[d] += w * c[at(p.c, (j * p.kv_heads + g) * p.dim + d)];
        }
    }
    for (var d = 0u; d < p.dim; d++) { o[at(p.o, (t * p.heads + h) * p.dim + d)] = acc[d] / l; }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(gid, nw);
    if (p.kind == 0u) { rope(e); } else if (p.kind == 1u) { kv_write(e); } else { attention(e); }
}
"#;

/// Largest head_dim the attention kernel's accumulator holds.
pub(crate) const MAX_HEAD_DIM: usize = 256;

/// Runs rope, kv_write or attention. `bufs`: a, b, c, out as the kernel documents.
pub(crate) fn run(
    gpu: &Gpu,
    op: &Op,
    ins: &[TensorDesc],
    out: &TensorDesc,
    bufs: [&wgpu::Buffer; 4],
) -> Result<()> {
    let a = &ins[0];
    let views = [
        View::of(a)?,
        View::of(&ins[1])?,
        View::of(ins.get(2).unwrap_or(a))?,
        View::of(out)?,
    ];
    let (t, heads, dim) = (a.shape[0] as u32, a.shape[1] as u32, a.shape[2] as u32);
    let mut scalars = [0u32; 12];
    let threads = match op {
        Op::Rope { rot, theta, mode } => {
            scalars[..8].copy_from_slice(&[
                0,
                heads,
                dim,
                *rot as u32,
                (*theta as f32).to_bits(),
                u32::from(*mode == RopeMode::Neox),
                0,
                0,
            ]);
            scalars[8] = t;
            t * heads * dim
        }
        Op::KvWrite => {
            scalars[..3].copy_from_slice(&[1, heads, dim]);
            scalars[8] = t;
            scalars[9] = out.shape[0] as u32;
            scalars[10] = heads;
            t * heads * dim
        }
        Op::Attention { scale, causal } => {
            let k = &ins[1];
            scalars[..8].copy_from_slice(&[
                2,
                heads,
                dim,
                0,
                0,
                0,
                (*scale as f32).to_bits(),
                u32::from(*causal),
            ]);
            scalars[8] = t;
            scalars[9] = k.shape[0] as u32;
            scalars[10] = k.shape[1] as u32;
            t * heads
        }
        _ => 0,
    };
    let mut params: Vec<u32> = views.iter().flat_map(|v| v.words()).collect();
    params.extend(scalars);
    gpu.dispatch("attention", ATTENTION_WGSL, &params, &bufs, threads)
}
