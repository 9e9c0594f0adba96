//! One thread per output element: add and mul (second operand broadcast),
//! scale, silu, gelu, swiglu and cast (a copy through the operands' loads and
//! stores, which convert and dequantize).

use glmhal_hal::{Op, Result};

use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

static MAP: Kernel = Kernel {
    name: "map",
    scalars: &[
        ("n", "u32"),
        ("kind", "u32"),
        ("factor", "f32"),
        ("half", "u32"),
    ],
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
    switch p.kind {
        case 0u: { r = ld_a(at(p.a, e)) + ld_b(at(p.b, e)); }
        case 1u: { r = ld_a(at(p.a, e)) * ld_b(at(p.b, e)); }
        case 2u: { r = ld_a(at(p.a, e)) * p.factor; }
        case 3u: { r = silu(ld_a(at(p.a, e))); }
        case 4u: { r = gelu(ld_a(at(p.a, e))); }
        case 5u: {
            // swiglu: output (row, c) reads gate (row, c) and up (row, c + half).
            let row = e / p.half;
            let c = e % p.half;
            r = silu(ld_a(at(p.a, row * 2u * p.half + c))) * ld_a(at(p.a, row * 2u * p.half + c + p.half));
        }
        default: { r = ld_a(at(p.a, e)); }
    }
    st_o(at(p.o, e), r);
}
"#,
};

/// Records an elementwise op: `ins` are its inputs, `out` its output.
pub(crate) fn launch(
    op: &Op,
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Launch> {
    let a = ins[0];
    let n = out.desc.numel() as u32;
    let (kind, factor, half) = match op {
        Op::Add => (0u32, 0.0, 1u32),
        Op::Mul => (1, 0.0, 1),
        Op::Scale { factor } => (2, *factor, 1),
        Op::Silu => (3, 0.0, 1),
        Op::Gelu => (4, 0.0, 1),
        Op::SwiGlu => (5, 0.0, out.desc.last_dim() as u32),
        _ => (6, 0.0, 1),
    };
    let mut args = vec![Arg::read("a", a, binding)?];
    if matches!(op, Op::Add | Op::Mul) {
        args.push(Arg::new(
            super::Operand::read("b", ins[1].desc.dtype),
            ins[1],
            &a.desc.shape,
            binding,
        )?);
    }
    args.push(Arg::write("o", out, binding)?);
    // Unary kernels bind `a` again as `b` so one module serves every kind.
    if args.len() == 2 {
        let again = Arg::new(
            super::Operand::read("b", a.desc.dtype),
            a,
            &a.desc.shape,
            binding,
        )?;
        args.insert(1, again);
    }
    Ok(Launch::new(
        &MAP,
        args,
        &[n, kind, f32_bits(factor), half],
        Grid::Threads(n),
        binding.native_f16,
    ))
}
