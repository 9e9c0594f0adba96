//! rope: rotary embedding of the first `rot` dims of each head at explicit
//! positions, GLM's interleaved pairs or NeoX halves; one thread per element.

use glmhal_hal::{Result, RopeMode};

use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

static ROPE: Kernel = Kernel {
    name: "rope",
    scalars: &[
        ("tokens", "u32"),
        ("heads", "u32"),
        ("dim", "u32"),
        ("rot", "u32"),
        ("theta", "f32"),
        ("neox", "u32"),
    ],
    helpers: &[],
    status: false,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // x [T, heads, D], positions [T]; one thread per output element.
    let e = flat(g, nw);
    if (e >= p.tokens * p.heads * p.dim) { return; }
    let d = e % p.dim;
    let head = e - d;
    let t = e / (p.heads * p.dim);
    if (d >= p.rot) { st_o(at(p.o, e), ld_x(at(p.x, e))); return; }
    let half = p.rot / 2u;
    var i: u32; var first: u32; var second: u32;
    if (p.neox != 0u) { i = d % half; first = i; second = i + half; }
    else { i = d / 2u; first = 2u * i; second = 2u * i + 1u; }
    let pos = f32(ldi_pos(at(p.pos, t)));
    let angle = pos * pow(p.theta, -2.0 * f32(i) / f32(p.rot));
    let s = sin(angle);
    let c = cos(angle);
    let x0 = ld_x(at(p.x, head + first));
    let x1 = ld_x(at(p.x, head + second));
    if (d == first) { st_o(at(p.o, e), x0 * c - x1 * s); } else { st_o(at(p.o, e), x1 * c + x0 * s); }
}
"#,
};

/// Records rope of `x [T, heads, D]` at `positions [T]`.
pub(crate) fn launch(
    x: Tensor<'_>,
    positions: Tensor<'_>,
    out: Tensor<'_>,
    (rot, theta, mode): (usize, f64, RopeMode),
    binding: &Binding,
) -> Result<Launch> {
    let s = &x.desc.shape;
    let (t, heads, dim) = (s[0] as u32, s[1] as u32, s[2] as u32);
    let args = vec![
        Arg::read("x", x, binding)?,
        Arg::read("pos", positions, binding)?,
        Arg::write("o", out, binding)?,
    ];
    let scalars = [
        t,
        heads,
        dim,
        rot as u32,
        f32_bits(theta),
        u32::from(mode == RopeMode::Neox),
    ];
    Ok(Launch::new(
        &ROPE,
        args,
        &scalars,
        Grid::Threads(t * heads * dim),
        binding.native_f16,
    ))
}
