//! The mixture-of-experts ops. `mat_mul_id`: one thread per output element
//! of a routed row, reading only its expert's row; stacked experts larger
//! than one storage binding are split by experts into launches that each
//! serve the ids in their range. `moe_select`: one workgroup per token, the
//! biased scores in workgroup memory, one thread keeping groups and picking
//! experts by repeated maxima (lowest index on ties). `moe_weights`: one
//! thread per token. Bad ids and NaN scores are reported at the next wait.

use glmhal_hal::Result;

use super::matmul::row_parts;
use super::wgsl::status;
use super::{f32_bits, Arg, Binding, Grid, Kernel, Launch, Tensor};

/// Experts `moe_select` holds in workgroup memory.
pub(crate) const MOE_MAX_EXPERTS: usize = 1024;

static MAT_MUL_ID: Kernel = Kernel {
    name: "mat_mul_id",
    scalars: &[
        ("pairs", "u32"),
        ("rows", "u32"),
        ("chosen", "u32"),
        ("experts", "u32"),
        ("n", "u32"),
        ("k", "u32"),
        ("lo", "u32"),
        ("hi", "u32"),
        ("first", "u32"),
        ("code", "u32"),
    ],
    helpers: &[],
    status: true,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(g, nw);
    if (e >= p.pairs * p.n) { return; }
    let pair = e / p.n;
    let col = e % p.n;
    let id = bitcast<u32>(ldi_ids(at(p.ids, pair)));
    if (id >= p.lo && id < p.hi) {
        var xrow = (pair / p.chosen) * p.rows;
        if (p.rows != 1u) { xrow += pair % p.chosen; }
        // Both rows run along the last dim: their first elements, then strides.
        let w0 = at(p.w, ((id - p.lo) * p.n + col) * p.k);
        let x0 = at(p.x, xrow * p.k);
        var acc = 0.0;
        for (var c = 0u; c < p.k; c++) {
            acc += ld_w(w0 + c * p.w.col_stride) * ld_x(x0 + c * p.x.col_stride);
        }
        st_o(at(p.o, e), acc);
    } else if (p.first != 0u && id >= p.experts) {
        st_o(at(p.o, e), 0.0);
        if (col == 0u) { report(p.code, id); }
    }
}
"#,
};

static MOE_SELECT: Kernel = Kernel {
    name: "moe_select",
    scalars: &[
        ("rows", "u32"),
        ("experts", "u32"),
        ("top_k", "u32"),
        ("n_group", "u32"),
        ("topk_group", "u32"),
        ("code", "u32"),
    ],
    helpers: &[],
    status: true,
    body: r#"
var<workgroup> scores: array<f32, 1024>;
// 0: a candidate, 1: chosen, 2: in a group not kept.
var<workgroup> flags: array<u32, 1024>;
var<workgroup> group_scores: array<f32, 512>;
var<workgroup> kept: array<u32, 512>;

fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = group_index(wg, nw);
    if (r >= p.rows) { return; }
    for (var e = lid; e < p.experts; e += 64u) {
        scores[e] = sigmoid(ld_logits(at(p.logits, r * p.experts + e))) + ld_bias(at(p.bias, e));
        flags[e] = select(0u, 2u, p.n_group > 1u);
    }
    workgroupBarrier();
    if (lid != 0u) { return; }
    var nan = false;
    // On the bits: WGSL lets compilers assume floats are never NaN.
    for (var e = 0u; e < p.experts; e++) { nan = nan || (bitcast<u32>(scores[e]) & 0x7fffffffu) > 0x7f800000u; }
    if (nan) {
        report(p.code, r);
        for (var j = 0u; j < p.top_k; j++) { sti_o(at(p.o, r * p.top_k + j), i32(j)); }
        return;
    }
    let per = p.experts / p.n_group;
    if (p.n_group > 1u) {
        // A group's score: its two best experts' scores, summed.
        for (var gi = 0u; gi < p.n_group; gi++) {
            // Indices, not a sentinel value, so infinite scores sum as they are.
            var best = p.experts;
            var second = p.experts;
            for (var e = gi * per; e < (gi + 1u) * per; e++) {
                if (best == p.experts || scores[e] > scores[best]) { second = best; best = e; }
                else if (second == p.experts || scores[e] > scores[second]) { second = e; }
            }
            group_scores[gi] = scores[best] + scores[second];
            kept[gi] = 0u;
        }
        for (var s = 0u; s < p.topk_group; s++) {
            var b = p.n_group;
            for (var gi = 0u; gi < p.n_group; gi++) {
                if (kept[gi] == 0u && (b == p.n_group || group_scores[gi] > group_scores[b])) { b = gi; }
            }
            kept[b] = 1u;
            for (var e = b * per; e < (b + 1u) * per; e++) { flags[e] = 0u; }
        }
    }
    for (var s = 0u; s < p.top_k; s++) {
        var b = p.experts;
        for (var e = 0u; e < p.experts; e++) {
            if (flags[e] == 0u && (b == p.experts || scores[e] > scores[b])) { b = e; }
        }
        flags[b] = 1u;
    }
    var j = 0u;
    for (var e = 0u; e < p.experts; e++) {
        if (flags[e] == 1u) { sti_o(at(p.o, r * p.top_k + j), i32(e)); j++; }
    }
}
"#,
};

static MOE_WEIGHTS: Kernel = Kernel {
    name: "moe_weights",
    scalars: &[
        ("rows", "u32"),
        ("experts", "u32"),
        ("k", "u32"),
        ("normalize", "u32"),
        ("scale", "f32"),
        ("code", "u32"),
    ],
    helpers: &[],
    status: true,
    body: r#"
fn sigmoid(v: f32) -> f32 { return 1.0 / (1.0 + exp(-v)); }

// The sigmoid of the logit of slot j of row r (0 for an id outside the experts).
fn chosen_score(r: u32, j: u32) -> f32 {
    let id = bitcast<u32>(ldi_ids(at(p.ids, r * p.k + j)));
    if (id >= p.experts) { return 0.0; }
    return sigmoid(ld_logits(at(p.logits, r * p.experts + id)));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let r = flat(g, nw);
    if (r >= p.rows) { return; }
    var sum = 0.0;
    for (var j = 0u; j < p.k; j++) {
        let id = bitcast<u32>(ldi_ids(at(p.ids, r * p.k + j)));
        if (id >= p.experts) { report(p.code, id); }
        sum += chosen_score(r, j);
    }
    var denom = 1.0;
    if (p.normalize != 0u) { denom = sum + 1e-20; }
    for (var j = 0u; j < p.k; j++) { st_o(at(p.o, r * p.k + j), chosen_score(r, j) / denom * p.scale); }
}
"#,
};

/// Records mat_mul_id: one launch per range of experts that fits a binding.
pub(crate) fn mat_mul_id(
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Vec<Launch>> {
    let (x, w, ids) = (ins[0], ins[1], ins[2]);
    let (experts, n, k) = (w.desc.shape[0], w.desc.shape[1], w.desc.shape[2]);
    let (tokens, chosen) = (ids.desc.shape[0], ids.desc.shape[1]);
    let pairs = tokens * chosen;
    let mut launches = Vec::new();
    for (i, (start, len, part)) in row_parts(w.desc, binding)?.into_iter().enumerate() {
        let part = Tensor {
            desc: &part,
            buffer: w.buffer,
        };
        let args = vec![
            Arg::read("x", x, binding)?,
            Arg::read("w", part, binding)?,
            Arg::read("ids", ids, binding)?,
            Arg::write("o", out, binding)?,
        ];
        let scalars = [
            pairs as u32,
            x.desc.shape[1] as u32,
            chosen as u32,
            experts as u32,
            n as u32,
            k as u32,
            start as u32,
            (start + len) as u32,
            u32::from(i == 0),
            status::EXPERT_OUT_OF_RANGE,
        ];
        let grid = Grid::Threads((pairs * n) as u32);
        launches.push(Launch::new(
            &MAT_MUL_ID,
            args,
            &scalars,
            grid,
            binding.native_f16,
        ));
    }
    Ok(launches)
}

/// Records moe_select: one workgroup per token.
pub(crate) fn moe_select(
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    (top_k, n_group, topk_group): (usize, usize, usize),
    binding: &Binding,
) -> Result<Launch> {
    let (logits, bias) = (ins[0], ins[1]);
    let rows = logits.desc.shape[0] as u32;
    let args = vec![
        Arg::read("logits", logits, binding)?,
        Arg::read("bias", bias, binding)?,
        Arg::write("o", out, binding)?,
    ];
    let scalars = [
        rows,
        logits.desc.shape[1] as u32,
        top_k as u32,
        n_group as u32,
        topk_group as u32,
        status::ROUTER_NON_FINITE,
    ];
    Ok(Launch::new(
        &MOE_SELECT,
        args,
        &scalars,
        Grid::Groups(rows),
        binding.native_f16,
    ))
}

/// Records moe_weights: one thread per token.
pub(crate) fn moe_weights(
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    (normalize, scale): (bool, f64),
    binding: &Binding,
) -> Result<Launch> {
    let (logits, ids) = (ins[0], ins[1]);
    let rows = logits.desc.shape[0] as u32;
    let args = vec![
        Arg::read("logits", logits, binding)?,
        Arg::read("ids", ids, binding)?,
        Arg::write("o", out, binding)?,
    ];
    let scalars = [
        rows,
        logits.desc.shape[1] as u32,
        ids.desc.shape[1] as u32,
        u32::from(normalize),
        f32_bits(scale),
        status::WEIGHT_ID_OUT_OF_RANGE,
    ];
    Ok(Launch::new(
        &MOE_WEIGHTS,
        args,
        &scalars,
        Grid::Threads(rows),
        binding.native_f16,
    ))
}
