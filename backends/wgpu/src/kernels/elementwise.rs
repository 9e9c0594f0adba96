//! add and mul (second operand broadcast where its dims are 1) and scale:
//! one thread per output element.

use glmhal_hal::{Op, Result};

use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Operand, Tensor};

static BINARY: Kernel = Kernel {
    name: "binary",
    scalars: &[("n", "u32"), ("kind", "u32")],
    helpers: &[],
    status: false,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(g, nw);
    if (e >= p.n) { return; }
    let a = ld_a(at(p.a, e));
    let b = ld_b(at(p.b, e));
    var r = a + b;
    if (p.kind == 1u) { r = a * b; }
    st_o(at(p.o, e), r);
}
"#,
};

static SCALE: Kernel = Kernel {
    name: "scale",
    scalars: &[("n", "u32"), ("factor", "f32")],
    helpers: &[],
    status: false,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(g, nw);
    if (e >= p.n) { return; }
    st_o(at(p.o, e), ld_a(at(p.a, e)) * p.factor);
}
"#,
};

/// Records add or mul.
pub(crate) fn binary(
    op: &Op,
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Launch> {
    let (a, b) = (ins[0], ins[1]);
    let n = out.desc.numel() as u32;
    let args = vec![
        Arg::read("a", a, binding)?,
        Arg::new(Operand::read("b", b.desc.dtype), b, &a.desc.shape, binding)?,
        Arg::write("o", out, binding)?,
    ];
    let kind = u32::from(matches!(op, Op::Mul));
    Ok(Launch::new(
        &BINARY,
        args,
        &[n, kind],
        Grid::Threads(n),
        binding.native_f16,
    ))
}

/// Records scale by `factor`.
pub(crate) fn scale(
    x: Tensor<'_>,
    out: Tensor<'_>,
    factor: f64,
    binding: &Binding,
) -> Result<Launch> {
    let n = out.desc.numel() as u32;
    let args = vec![Arg::read("a", x, binding)?, Arg::write("o", out, binding)?];
    Ok(Launch::new(
        &SCALE,
        args,
        &[n, f32_bits(factor)],
        Grid::Threads(n),
        binding.native_f16,
    ))
}
