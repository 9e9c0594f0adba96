//! silu, gelu (tanh approximation) and swiglu on a fused [gate | up] input:
//! one thread per output element.

use glmhal_hal::{Op, Result};

use super::{Arg, Binding, Grid, Kernel, Launch, Tensor};

static ACTIVATION: Kernel = Kernel {
    name: "activation",
    scalars: &[("n", "u32"), ("kind", "u32"), ("half", "u32")],
    helpers: &[],
    status: false,
    body: r#"
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
    if (p.kind == 0u) {
        r = silu(ld_x(at(p.x, e)));
    } else if (p.kind == 1u) {
        r = gelu(ld_x(at(p.x, e)));
    } else {
        // swiglu: output (row, c) reads gate (row, c) and up (row, c + half).
        let row = e / p.half;
        let c = e % p.half;
        r = silu(ld_x(at(p.x, row * 2u * p.half + c))) * ld_x(at(p.x, row * 2u * p.half + c + p.half));
    }
    st_o(at(p.o, e), r);
}
"#,
};

/// Records silu, gelu or swiglu.
pub(crate) fn launch(op: &Op, x: Tensor<'_>, out: Tensor<'_>, binding: &Binding) -> Result<Launch> {
    let n = out.desc.numel() as u32;
    let (kind, half) = match op {
        Op::Silu => (0u32, 1u32),
        Op::Gelu => (1, 1),
        _ => (2, out.desc.last_dim() as u32),
    };
    let args = vec![Arg::read("x", x, binding)?, Arg::write("o", out, binding)?];
    Ok(Launch::new(
        &ACTIVATION,
        args,
        &[n, kind, half],
        Grid::Threads(n),
        binding.native_f16,
    ))
}
