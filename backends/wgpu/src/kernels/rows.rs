//! Row reductions, one 64-thread workgroup per row (threads stride over the
//! row and combine through workgroup memory, so no thread loops over a whole
//! long row): rms_norm, layer_norm, softmax and argmax, in f32.

use glmhal_hal::{Op, Result};

use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

static ROWS: Kernel = Kernel {
    name: "rows",
    scalars: &[
        ("rows", "u32"),
        ("cols", "u32"),
        ("kind", "u32"),
        ("eps", "f32"),
        ("scale", "f32"),
        ("causal", "u32"),
    ],
    body: r#"
var<workgroup> red: array<f32, 64>;
var<workgroup> redi: array<u32, 64>;
const NONE: u32 = 0xffffffffu;

fn sum_all(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) { red[lid] += red[lid + s]; }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn max_all(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wg, nw);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    if (p.kind == 0u) {
        // rms_norm; the normalized value is rounded to x's dtype before the weight, as GLM does.
        var ss = 0.0;
        for (var c = lid; c < p.cols; c += 64u) { let v = ld_x(at(p.x, base + c)); ss += v * v; }
        let inv = 1.0 / sqrt(sum_all(ss, lid) / f32(p.cols) + p.eps);
        for (var c = lid; c < p.cols; c += 64u) {
            st_o(at(p.o, base + c), rnd_x(ld_x(at(p.x, base + c)) * inv) * ld_w(at(p.w, c)));
        }
    } else if (p.kind == 1u) {
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
    } else if (p.kind == 2u) {
        // softmax of x * scale; causal rows see columns up to r + cols - rows.
        var visible = p.cols;
        if (p.causal != 0u) { visible = r + p.cols - p.rows + 1u; }
        var m = -3.4e38;
        for (var c = lid; c < visible; c += 64u) { m = max(m, ld_x(at(p.x, base + c)) * p.scale); }
        let mx = max_all(m, lid);
        var s = 0.0;
        for (var c = lid; c < visible; c += 64u) { s += exp(ld_x(at(p.x, base + c)) * p.scale - mx); }
        let sum = sum_all(s, lid);
        for (var c = lid; c < p.cols; c += 64u) {
            var v = 0.0;
            if (c < visible) { v = exp(ld_x(at(p.x, base + c)) * p.scale - mx) / sum; }
            st_o(at(p.o, base + c), v);
        }
    } else {
        // argmax: the first index of the largest value.
        var bv = 0.0;
        var bi = NONE;
        for (var c = lid; c < p.cols; c += 64u) {
            let v = ld_x(at(p.x, base + c));
            if (bi == NONE || v > bv) { bv = v; bi = c; }
        }
        red[lid] = bv;
        redi[lid] = bi;
        workgroupBarrier();
        for (var s = 32u; s > 0u; s = s >> 1u) {
            if (lid < s) {
                let ov = red[lid + s];
                let oi = redi[lid + s];
                let mine = redi[lid];
                if (oi != NONE && (mine == NONE || ov > red[lid] || (ov == red[lid] && oi < mine))) {
                    red[lid] = ov;
                    redi[lid] = oi;
                }
            }
            workgroupBarrier();
        }
        if (lid == 0u) { sti_o(at(p.o, r), i32(redi[0])); }
    }
}
"#,
};

/// Records rms_norm, layer_norm, softmax or argmax over the rows of `ins[0]`.
pub(crate) fn launch(
    op: &Op,
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Launch> {
    let x = ins[0];
    let (rows, cols) = (x.desc.rows() as u32, x.desc.last_dim() as u32);
    let (kind, eps, scale, causal) = match op {
        Op::RmsNorm { eps } => (0u32, *eps, 1.0, false),
        Op::LayerNorm { eps } => (1, *eps, 1.0, false),
        Op::Softmax { scale, causal } => (2, 0.0, *scale, *causal),
        _ => (3, 0.0, 1.0, false),
    };
    // Unused operands bind x again so every kind has the same module shape.
    let w = ins.get(1).copied().unwrap_or(x);
    let b = ins.get(2).copied().unwrap_or(x);
    let args = vec![
        Arg::read("x", x, binding)?,
        Arg::read("w", w, binding)?,
        Arg::read("b", b, binding)?,
        Arg::write("o", out, binding)?,
    ];
    Ok(Launch::new(
        &ROWS,
        args,
        &[
            rows,
            cols,
            kind,
            f32_bits(eps),
            f32_bits(scale),
            u32::from(causal),
        ],
        Grid::Groups(rows),
        binding.native_f16,
    ))
}
