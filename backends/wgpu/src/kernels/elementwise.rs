//! add and mul (second operand broadcast), scale, silu, gelu and swiglu, in f32.

use glmhal_hal::{Op, Result, TensorDesc};

use super::{Gpu, View};

/// One thread per output element; `kind` picks the function.
const MAP_WGSL: &str = r#"
struct Params { a: View, b: View, o: View, n: u32, kind: u32, factor: f32, half: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> o: array<f32>;

fn silu(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
fn gelu(x: f32) -> f32 {
    let u = 0.7978845608 * (x + 0.044715 * x * x * x);
    // tanh through exp, clamped so large |u| cannot overflow.
    let t = 1.0 - 2.0 / (exp(2.0 * clamp(u, -15.0, 15.0)) + 1.0);
    return 0.5 * x * (1.0 + t);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(g, nw);
    if (e >= p.n) { return; }
    var r: f32;
    switch p.kind {
        case 0u: { r = a[at(p.a, e)] + b[at(p.b, e)]; }
        case 1u: { r = a[at(p.a, e)] * b[at(p.b, e)]; }
        case 2u: { r = a[at(p.a, e)] * p.factor; }
        case 3u: { r = silu(a[at(p.a, e)]); }
        case 4u: { r = gelu(a[at(p.a, e)]); }
        default: {
            // swiglu: output element (row, c) reads gate (row, c) and up (row, c + half) of the input.
            let row = e / p.half;
            let c = e % p.half;
            let gate = a[at(p.a, row * 2u * p.half + c)];
            let up = a[at(p.a, row * 2u * p.half + c + p.half)];
            r = silu(gate) * up;
        }
    }
    o[at(p.o, e)] = r;
}
"#;

/// Runs an elementwise op. `a` and `out` are views into `bufs[0]` and `bufs[2]`; `b` into `bufs[1]`.
pub(crate) fn run(
    gpu: &Gpu,
    op: &Op,
    ins: &[TensorDesc],
    out: &TensorDesc,
    bufs: [&wgpu::Buffer; 3],
) -> Result<()> {
    let a = &ins[0];
    let n = out.numel() as u32;
    let (kind, factor, half) = match op {
        Op::Add => (0u32, 0.0f32, 1u32),
        Op::Mul => (1, 0.0, 1),
        Op::Scale { factor } => (2, *factor as f32, 1),
        Op::Silu => (3, 0.0, 1),
        Op::Gelu => (4, 0.0, 1),
        _ => (5, 0.0, out.last_dim() as u32),
    };
    let b_view = match op {
        Op::Add | Op::Mul => View::broadcast(&ins[1], &a.shape)?,
        _ => View::of(a)?,
    };
    let mut params = Vec::with_capacity(28);
    params.extend(View::of(a)?.words());
    params.extend(b_view.words());
    params.extend(View::of(out)?.words());
    params.extend([n, kind, factor.to_bits(), half]);
    gpu.dispatch("elementwise", MAP_WGSL, &params, &bufs, n)
}
