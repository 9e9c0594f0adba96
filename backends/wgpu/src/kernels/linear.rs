//! mat_mul (+ bias) and get_rows on f32 tensors: one thread per output element.

use glmhal_hal::{Op, Result, TensorDesc};

use super::{Gpu, View};

const LINEAR_WGSL: &str = r#"
struct Params { x: View, w: View, b: View, o: View, n: u32, k: u32, kind: u32, has_bias: u32, vocab: u32, pad0: u32, pad1: u32, pad2: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(g, nw);
    if (p.kind == 0u) {
        // y[m, j] = x[m, :] . w[j, :] (+ b[j]); o has o.cols = N.
        let total = p.o.cols * p.n;
        if (e >= total) { return; }
        let m = e / p.o.cols;
        let j = e % p.o.cols;
        var acc = 0.0;
        for (var q = 0u; q < p.k; q++) { acc += x[at(p.x, m * p.k + q)] * w[at(p.w, j * p.k + q)]; }
        if (p.has_bias != 0u) { acc += b[at(p.b, j)]; }
        o[at(p.o, e)] = acc;
    } else {
        // get_rows: x is the [V, H] table, b the i32 ids; ids outside the table read as zeros.
        let h = p.o.cols;
        if (e >= p.n * h) { return; }
        let i = e / h;
        let id = bitcast<u32>(b[at(p.b, i)]);
        var v = 0.0;
        if (id < p.vocab) { v = x[at(p.x, id * h + e % h)]; }
        o[at(p.o, e)] = v;
    }
}
"#;

/// Runs mat_mul or get_rows. `bufs` are x (or the table), w, bias (or ids) and out.
pub(crate) fn run(
    gpu: &Gpu,
    op: &Op,
    ins: &[TensorDesc],
    out: &TensorDesc,
    bufs: [&wgpu::Buffer; 4],
) -> Result<()> {
    let mut params = Vec::new();
    let threads = out.numel() as u32;
    match op {
        Op::MatMul { bias } => {
            let (x, w) = (&ins[0], &ins[1]);
            params.extend(View::of(x)?.words());
            params.extend(View::of(w)?.words());
            params.extend(
                if *bias {
                    View::of(&ins[2])?
                } else {
                    View::of(x)?
                }
                .words(),
            );
            params.extend(View::of(out)?.words());
            params.extend([
                x.shape[0] as u32,
                x.shape[1] as u32,
                0,
                u32::from(*bias),
                0,
                0,
                0,
                0,
            ]);
        }
        _ => {
            let (table, ids) = (&ins[0], &ins[1]);
            params.extend(View::of(table)?.words());
            params.extend(View::of(table)?.words());
            params.extend(View::of(ids)?.words());
            params.extend(View::of(out)?.words());
            params.extend([ids.shape[0] as u32, 0, 1, 0, table.shape[0] as u32, 0, 0, 0]);
        }
    }
    gpu.dispatch("linear", LINEAR_WGSL, &params, &bufs, threads)
}
