//! attention: softmax(scale·q·kᵀ, causal)·v with grouped KV heads.
//!
//! One 64-thread workgroup per (query, head): keys are taken in tiles of 64
//! (one score per thread, from Q already scaled as GLM needs), and an online
//! f32 softmax rescales the running sums per tile, so no thread loops over
//! the whole cache. Its loops take four steps at a time
//! ([`loop_iterations`] counts them for drivers that cap a shader's loops).

use glmhal_hal::Result;

use super::wgsl::REDUCE_WGSL;
use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

/// Largest head_dim the attention kernel holds (4 accumulators per thread).
pub(crate) const MAX_HEAD_DIM: usize = 256;

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
    helpers: &[REDUCE_WGSL],
    status: false,
    body: r#"
var<workgroup> qs: array<f32, 256>;
var<workgroup> w: array<f32, 64>;

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
            // Four dims a step: llvmpipe stops a shader after 65535 loop
            // iterations in all, so the loops are kept short.
            let base = (j * p.kv_heads + g) * p.dim;
            var d = 0u;
            var s4 = 0.0;
            for (; d + 4u <= p.dim; d += 4u) {
                s4 += qs[d] * ld_k(at(p.k, base + d)) + qs[d + 1u] * ld_k(at(p.k, base + d + 1u))
                    + qs[d + 2u] * ld_k(at(p.k, base + d + 2u)) + qs[d + 3u] * ld_k(at(p.k, base + d + 3u));
            }
            for (; d < p.dim; d++) { s4 += qs[d] * ld_k(at(p.k, base + d)); }
            s = s4;
        }
        let m_new = max(m, max_all(s, lid));
        var pw = 0.0;
        if (j < visible) { pw = exp(s - m_new); }
        let tile_sum = sum_all(pw, lid);
        w[lid] = pw;
        workgroupBarrier();
        let corr = exp(m - m_new);
        let count = min(64u, visible - tile * 64u);
        l = l * corr + tile_sum;
        for (var slot = 0u; slot < 4u; slot++) {
            let d = lid + slot * 64u;
            if (d < p.dim) {
                var a = acc[slot] * corr;
                let row = p.kv_heads * p.dim;
                let base = (tile * 64u * p.kv_heads + g) * p.dim + d;
                var jj = 0u;
                for (; jj + 4u <= count; jj += 4u) {
                    a += w[jj] * ld_v(at(p.v, base + jj * row)) + w[jj + 1u] * ld_v(at(p.v, base + (jj + 1u) * row))
                        + w[jj + 2u] * ld_v(at(p.v, base + (jj + 2u) * row)) + w[jj + 3u] * ld_v(at(p.v, base + (jj + 3u) * row));
                }
                for (; jj < count; jj++) { a += w[jj] * ld_v(at(p.v, base + jj * row)); }
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

/// Loop iterations one invocation runs over `keys` keys of `dim` values:
/// per tile of 64 keys, the score (four dims a step), two reductions over
/// the workgroup, and the weighted values (four keys a step) for each of
/// the thread's dims.
pub(crate) fn loop_iterations(keys: usize, dim: usize) -> u64 {
    let tiles = keys.div_ceil(64) as u64;
    let (dim, slots) = (dim as u64, dim.div_ceil(64) as u64);
    let per_tile = dim / 4 + dim % 4 + 2 * 6 + 4 + slots * 16;
    dim.div_ceil(64) + tiles * (1 + per_tile)
}

/// Records attention of `q [T, heads, D]` over `k`, `v [S, kv_heads, D]`.
pub(crate) fn launch(
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    scale: f64,
    causal: bool,
    binding: &Binding,
) -> Result<Launch> {
    let (q, k, v) = (ins[0], ins[1], ins[2]);
    let s = &q.desc.shape;
    let (t, heads) = (s[0] as u32, s[1] as u32);
    let args = vec![
        Arg::read("q", q, binding)?,
        Arg::read("k", k, binding)?,
        Arg::read("v", v, binding)?,
        Arg::write("o", out, binding)?,
    ];
    let scalars = [
        t,
        heads,
        s[2] as u32,
        k.desc.shape[0] as u32,
        k.desc.shape[1] as u32,
        f32_bits(scale),
        u32::from(causal),
    ];
    Ok(Launch::new(
        &ATTENTION,
        args,
        &scalars,
        Grid::Groups(t * heads),
        binding.native_f16,
    ))
}
