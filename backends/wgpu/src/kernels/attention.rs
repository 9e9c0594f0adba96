//! rope, kv_write and attention.
//!
//! Attention runs one 64-thread workgroup per (query, head): keys are taken
//! in tiles of 64 (one score per thread, from Q already scaled as GLM needs),
//! and an online f32 softmax rescales the running sums per tile, so no
//! thread loops over the whole cache and any cache length fits.

use glmhal_hal::{Op, Result, RopeMode};

use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

/// Largest head_dim the attention kernel holds (4 accumulators per thread).
pub(crate) const MAX_HEAD_DIM: usize = 256;

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

static KV_WRITE: Kernel = Kernel {
    name: "kv_write",
    scalars: &[("n", "u32"), ("row", "u32"), ("capacity", "u32")],
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // rows [T, kv, D] -> cache [C, kv, D] at positions [T]; positions outside the cache write nothing.
    let e = flat(g, nw);
    if (e >= p.n) { return; }
    let t = e / p.row;
    let pos = bitcast<u32>(ldi_pos(at(p.pos, t)));
    if (pos >= p.capacity) { return; }
    st_o(at(p.o, pos * p.row + e % p.row), ld_x(at(p.x, e)));
}
"#,
};

static ATTENTION: Kernel = Kernel {
    name: "attention",
    scalars: &[
        ("tokens", "u32"),
        ("heads", "u32"),
        ("dim", "u32"),
        ("keys", "u32"),
        ("kv_heads", "u32"),
        ("scale", "f32"),
        ("causal", "u32"),
    ],
    body: r#"
var<workgroup> qs: array<f32, 256>;
var<workgroup> w: array<f32, 64>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    // q [T, heads, D], k and v [S, kv_heads, D]; this workgroup is (t, h).
    let e = group_index(wg, nw);
    if (e >= p.tokens * p.heads) { return; }
    let t = e / p.heads;
    let h = e % p.heads;
    let g = h / (p.heads / p.kv_heads);
    var visible = p.keys;
    if (p.causal != 0u) { visible = p.keys - p.tokens + t + 1u; }
    for (var d = lid; d < p.dim; d += 64u) { qs[d] = ld_q(at(p.q, (t * p.heads + h) * p.dim + d)) * p.scale; }
    workgroupBarrier();
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var m = -3.4e38;
    var l = 0.0;
    let tiles = (visible + 63u) / 64u;
    for (var tile = 0u; tile < tiles; tile++) {
        let j = tile * 64u + lid;
        var s = -3.4e38;
        if (j < visible) {
            s = 0.0;
            for (var d = 0u; d < p.dim; d++) { s += qs[d] * ld_k(at(p.k, (j * p.kv_heads + g) * p.dim + d)); }
        }
        red[lid] = s;
        workgroupBarrier();
        for (var st = 32u; st > 0u; st = st >> 1u) {
            if (lid < st) { red[lid] = max(red[lid], red[lid + st]); }
            workgroupBarrier();
        }
        let m_new = max(m, red[0]);
        var pw = 0.0;
        if (j < visible) { pw = exp(s - m_new); }
        w[lid] = pw;
        workgroupBarrier();
        let corr = exp(m - m_new);
        var tile_sum = 0.0;
        let count = min(64u, visible - tile * 64u);
        for (var jj = 0u; jj < count; jj++) { tile_sum += w[jj]; }
        l = l * corr + tile_sum;
        for (var slot = 0u; slot < 4u; slot++) {
            let d = lid + slot * 64u;
            if (d < p.dim) {
                var a = acc[slot] * corr;
                for (var jj = 0u; jj < count; jj++) {
                    a += w[jj] * ld_v(at(p.v, ((tile * 64u + jj) * p.kv_heads + g) * p.dim + d));
                }
                acc[slot] = a;
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    for (var slot = 0u; slot < 4u; slot++) {
        let d = lid + slot * 64u;
        if (d < p.dim) { st_o(at(p.o, (t * p.heads + h) * p.dim + d), acc[slot] / l); }
    }
}
"#,
};

/// Records rope, kv_write or attention.
pub(crate) fn launch(
    op: &Op,
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Launch> {
    let x = ins[0];
    let (t, heads, dim) = (
        x.desc.shape[0] as u32,
        x.desc.shape[1] as u32,
        x.desc.shape[2] as u32,
    );
    let native = binding.native_f16;
    Ok(match op {
        Op::Rope { rot, theta, mode } => {
            let args = vec![
                Arg::read("x", x, binding)?,
                Arg::read("pos", ins[1], binding)?,
                Arg::write("o", out, binding)?,
            ];
            let scalars = [
                t,
                heads,
                dim,
                *rot as u32,
                f32_bits(*theta),
                u32::from(*mode == RopeMode::Neox),
            ];
            Launch::new(
                &ROPE,
                args,
                &scalars,
                Grid::Threads(t * heads * dim),
                native,
            )
        }
        Op::KvWrite => {
            let args = vec![
                Arg::read("x", x, binding)?,
                Arg::read("pos", ins[1], binding)?,
                Arg::write("o", out, binding)?,
            ];
            let n = t * heads * dim;
            let scalars = [n, heads * dim, out.desc.shape[0] as u32];
            Launch::new(&KV_WRITE, args, &scalars, Grid::Threads(n), native)
        }
        _ => {
            let (scale, causal) = match op {
                Op::Attention { scale, causal } => (*scale, *causal),
                _ => (1.0, false),
            };
            let k = ins[1];
            let args = vec![
                Arg::read("q", x, binding)?,
                Arg::read("k", k, binding)?,
                Arg::read("v", ins[2], binding)?,
                Arg::write("o", out, binding)?,
            ];
            let scalars = [
                t,
                heads,
                dim,
                k.desc.shape[0] as u32,
                k.desc.shape[1] as u32,
                f32_bits(scale),
                u32::from(causal),
            ];
            Launch::new(&ATTENTION, args, &scalars, Grid::Groups(t * heads), native)
        }
    })
}
