//! rms_norm and layer_norm, one 64-thread workgroup per row: threads stride
//! over the row and combine partial sums in workgroup memory, so no thread
//! loops over a whole long row. f32 throughout.

use glmhal_hal::{Op, Result};

use super::wgsl::REDUCE_WGSL;
use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

static NORM: Kernel = Kernel {
    name: "norm",
    scalars: &[
        ("rows", "u32"),
        ("cols", "u32"),
        ("layer", "u32"),
        ("eps", "f32"),
    ],
    helpers: &[REDUCE_WGSL],
    status: false,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wg, nw);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    if (p.layer == 0u) {
        // rms_norm; the normalized value is rounded to x's dtype before the weight, as GLM does.
        var ss = 0.0;
        for (var c = lid; c < p.cols; c += 64u) { let v = ld_x(at(p.x, base + c)); ss += v * v; }
        let inv = 1.0 / sqrt(sum_all(ss, lid) / f32(p.cols) + p.eps);
        for (var c = lid; c < p.cols; c += 64u) {
            st_o(at(p.o, base + c), rnd_x(ld_x(at(p.x, base + c)) * inv) * ld_w(at(p.w, c)));
        }
    } else {
        // layer_norm, two passes: mean, then variance.
        var s = 0.0;
        for (var c = lid; c < p.cols; c += 64u) { s += ld_x(at(p.x, base + c)); }
        let mean = sum_all(s, lid) / f32(p.cols);
        var sv = 0.0;
        for (var c = lid; c < p.cols; c += 64u) { let d = ld_x(at(p.x, base + c)) - mean; sv += d * d; }
        let inv = 1.0 / sqrt(sum_all(sv, lid) / f32(p.cols) + p.eps);
        for (var c = lid; c < p.cols; c += 64u) {
            st_o(at(p.o, base + c), (ld_x(at(p.x, base + c)) - mean) * inv * ld_w(at(p.w, c)) + ld_b(at(p.b, c)));
        }
    }
}
"#,
};

/// Records rms_norm (`ins`: x, weight) or layer_norm (x, weight, bias).
pub(crate) fn launch(
    op: &Op,
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Launch> {
    let x = ins[0];
    let (rows, cols) = (x.desc.rows() as u32, x.desc.last_dim() as u32);
    let (layer, eps) = match op {
        Op::LayerNorm { eps } => (1u32, *eps),
        Op::RmsNorm { eps } => (0, *eps),
        _ => (0, 0.0),
    };
    // rms_norm has no bias: the weight stands in so both share one module shape.
    let bias = ins.get(2).copied().unwrap_or(ins[1]);
    let args = vec![
        Arg::read("x", x, binding)?,
        Arg::read("w", ins[1], binding)?,
        Arg::read("b", bias, binding)?,
        Arg::write("o", out, binding)?,
    ];
    Ok(Launch::new(
        &NORM,
        args,
        &[rows, cols, layer, f32_bits(eps)],
        Grid::Groups(rows),
        binding.native_f16,
    ))
}
