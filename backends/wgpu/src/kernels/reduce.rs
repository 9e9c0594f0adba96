//! softmax (scaled, optionally causal) and argmax over rows, one 64-thread
//! workgroup per row combining partial results in workgroup memory. A row
//! argmax finds a NaN or an infinity in is reported at the next wait.

use glmhal_hal::{Op, Result};

use super::wgsl::{status, REDUCE_WGSL};
use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

static SOFTMAX: Kernel = Kernel {
    name: "softmax",
    scalars: &[
        ("rows", "u32"),
        ("cols", "u32"),
        ("scale", "f32"),
        ("causal", "u32"),
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
    // Causal rows see columns up to r + cols - rows.
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
}
"#,
};

static ARGMAX: Kernel = Kernel {
    name: "argmax",
    scalars: &[("rows", "u32"), ("cols", "u32"), ("code", "u32")],
    helpers: &[],
    status: true,
    body: r#"
var<workgroup> best_v: array<f32, 64>;
var<workgroup> best_i: array<u32, 64>;
const NONE: u32 = 0xffffffffu;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wg, nw);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    // Each thread's first largest value, then a tree that keeps the lower index on ties.
    var bv = 0.0;
    var bi = NONE;
    var finite = true;
    for (var c = lid; c < p.cols; c += 64u) {
        let v = ld_x(at(p.x, base + c));
        if (bi == NONE || v > bv) { bv = v; bi = c; }
        // On the bits: WGSL lets compilers assume floats are never NaN or infinite.
        finite = finite && (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
    }
    if (!finite) { report(p.code, r); }
    best_v[lid] = bv;
    best_i[lid] = bi;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let ov = best_v[lid + s];
            let oi = best_i[lid + s];
            let mine = best_i[lid];
            if (oi != NONE && (mine == NONE || ov > best_v[lid] || (ov == best_v[lid] && oi < mine))) {
                best_v[lid] = ov;
                best_i[lid] = oi;
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) { sti_o(at(p.o, r), i32(best_i[0])); }
}
"#,
};

/// Records softmax or argmax over the rows of `x`.
pub(crate) fn launch(op: &Op, x: Tensor<'_>, out: Tensor<'_>, binding: &Binding) -> Result<Launch> {
    let (rows, cols) = (x.desc.rows() as u32, x.desc.last_dim() as u32);
    let args = vec![Arg::read("x", x, binding)?, Arg::write("o", out, binding)?];
    let native = binding.native_f16;
    Ok(match op {
        Op::Softmax { scale, causal } => Launch::new(
            &SOFTMAX,
            args,
            &[rows, cols, f32_bits(*scale), u32::from(*causal)],
            Grid::Groups(rows),
            native,
        ),
        _ => Launch::new(
            &ARGMAX,
            args,
            &[rows, cols, status::NON_FINITE],
            Grid::Groups(rows),
            native,
        ),
    })
}
