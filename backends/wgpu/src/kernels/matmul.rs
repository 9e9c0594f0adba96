//! mat_mul (+ bias) and batched_mat_mul. Weights in any weight dtype are
//! decoded inside the loads (Q8_0/Q4_0 block by block), and weights larger
//! than one storage binding are split by rows into launches that each bind
//! one part (`row_parts`, which get_rows and mat_mul_id use for their tables too).

use glmhal_hal::{HalError, Result, TensorDesc};

use super::wgsl::REDUCE_WGSL;
use super::{Arg, Binding, Grid, Kernel, Launch, Tensor, MAX_GROUPS};

/// `o[b, m, n] = Σ_k a[b, m, k] · bm[b, k, n] (+ c[n])` with arbitrary element
/// strides, in 16×16 tiles staged through workgroup memory.
static TILED: Kernel = Kernel {
    name: "matmul_tiled",
    scalars: MATMUL_SCALARS,
    helpers: &[],
    status: false,
    body: r#"
var<workgroup> ta: array<array<f32, 16>, 16>;
var<workgroup> tb: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) l: vec3<u32>) {
    let bi = wg.z;
    let row = wg.y * 16u + l.y;
    let col = wg.x * 16u + l.x;
    var acc = 0.0;
    let tiles = (p.k + 15u) / 16u;
    for (var t = 0u; t < tiles; t++) {
        let ka = t * 16u + l.x;
        var va = 0.0;
        if (row < p.m && ka < p.k) { va = ld_a(bi * p.a_sb + row * p.a_sm + ka * p.a_sk); }
        ta[l.y][l.x] = va;
        // Neighbouring threads read neighbouring k when k is the contiguous dim (weights).
        var kb = t * 16u + l.y;
        var nb = wg.x * 16u + l.x;
        if (p.b_sk == 1u) { kb = t * 16u + l.x; nb = wg.x * 16u + l.y; }
        var vb = 0.0;
        if (nb < p.n && kb < p.k) { vb = ld_b(bi * p.b_sb + kb * p.b_sk + nb * p.b_sn); }
        if (p.b_sk == 1u) { tb[l.x][l.y] = vb; } else { tb[l.y][l.x] = vb; }
        workgroupBarrier();
        for (var q = 0u; q < 16u; q++) { acc += ta[l.y][q] * tb[q][l.x]; }
        workgroupBarrier();
    }
    if (row < p.m && col < p.n) {
        if (p.has_bias != 0u) { acc += ld_c(at(p.c, col)); }
        st_o(bi * p.o_sb + row * p.o_sm + col * p.o_sn, acc);
    }
}
"#,
};

/// The same product for few rows (decode): one 64-thread workgroup per
/// output element, threads striding over k and summing in workgroup memory.
static ROWWISE: Kernel = Kernel {
    name: "matmul_rowwise",
    scalars: MATMUL_SCALARS,
    helpers: &[REDUCE_WGSL],
    status: false,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let e = group_index(wg, nw);
    if (e >= p.batch * p.m * p.n) { return; }
    let col = e % p.n;
    let row = (e / p.n) % p.m;
    let bi = e / (p.n * p.m);
    var acc = 0.0;
    for (var q = lid; q < p.k; q += 64u) {
        acc += ld_a(bi * p.a_sb + row * p.a_sm + q * p.a_sk) * ld_b(bi * p.b_sb + q * p.b_sk + col * p.b_sn);
    }
    var r = sum_all(acc, lid);
    if (lid == 0u) {
        if (p.has_bias != 0u) { r += ld_c(at(p.c, col)); }
        st_o(bi * p.o_sb + row * p.o_sm + col * p.o_sn, r);
    }
}
"#,
};

const MATMUL_SCALARS: &[(&str, &str)] = &[
    ("batch", "u32"),
    ("m", "u32"),
    ("n", "u32"),
    ("k", "u32"),
    ("a_sb", "u32"),
    ("a_sm", "u32"),
    ("a_sk", "u32"),
    ("b_sb", "u32"),
    ("b_sk", "u32"),
    ("b_sn", "u32"),
    ("o_sb", "u32"),
    ("o_sm", "u32"),
    ("o_sn", "u32"),
    ("has_bias", "u32"),
];

/// Rows at or below which the row-wise kernel beats 16×16 tiles.
const ROWWISE_MAX_ROWS: usize = 4;

/// Element strides `[batch, rows, cols]` of a rank-2 or rank-3 tensor.
fn strides3(d: &TensorDesc) -> [u32; 3] {
    let s: Vec<u32> = d.strides.iter().map(|&x| x as u32).collect();
    match s.as_slice() {
        [r, c] => [0, *r, *c],
        [b, r, c] => [*b, *r, *c],
        _ => [0, 0, 1],
    }
}

/// Rows of `desc` (along dim 0) that one binding can hold, whatever the
/// part's alignment: `None` when not even one row fits.
pub(crate) fn rows_per_part(desc: &TensorDesc, binding: &Binding) -> Option<usize> {
    let row_span = desc.dtype.bytes_for(
        1 + desc.shape[1..]
            .iter()
            .zip(&desc.strides[1..])
            .map(|(n, s)| (n - 1) * s)
            .sum::<usize>(),
    ) as u64;
    let stride = (desc.dtype.bytes_for(desc.strides[0]) as u64).max(1);
    // A part may start up to `align` bytes after its binding does.
    let room = binding.max_size.checked_sub(binding.align + row_span)?;
    Some((room / stride + 1) as usize)
}

/// Row ranges of `desc` (along dim 0) small enough that each binds alone.
pub(crate) fn row_chunks(desc: &TensorDesc, binding: &Binding) -> Result<Vec<(usize, usize)>> {
    let rows = desc.shape[0];
    if binding.fits(desc) {
        return Ok(vec![(0, rows)]);
    }
    let per = rows_per_part(desc, binding).ok_or_else(|| {
        HalError::invalid(
            "wgpu",
            format!(
                "one row of {} spans more than a storage binding ({} bytes)",
                desc.describe(),
                binding.max_size
            ),
        )
    })?;
    Ok((0..rows)
        .step_by(per)
        .map(|s| (s, per.min(rows - s)))
        .collect())
}

/// The parts of `desc` along dim 0 that each bind alone: first row, rows,
/// and the part's view.
pub(crate) fn row_parts(
    desc: &TensorDesc,
    binding: &Binding,
) -> Result<Vec<(usize, usize, TensorDesc)>> {
    row_chunks(desc, binding)?
        .into_iter()
        .map(|(start, len)| Ok((start, len, desc.narrowed(0, start, len)?)))
        .collect()
}

/// Records mat_mul: one launch per part of the weight that fits a binding.
pub(crate) fn mat_mul(
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    bias: bool,
    binding: &Binding,
) -> Result<Vec<Launch>> {
    let (x, w) = (ins[0], ins[1]);
    let mut launches = Vec::new();
    for (start, len, w_part) in row_parts(w.desc, binding)? {
        let o_part = out.desc.narrowed(1, start, len)?;
        let b_part = match bias {
            true => Some(ins[2].desc.narrowed(0, start, len)?),
            false => None,
        };
        let bias_t = b_part.as_ref().map(|d| Tensor {
            desc: d,
            buffer: ins[2].buffer,
        });
        let [_, w_sn, w_sk] = strides3(&w_part);
        launches.push(product(
            x,
            Tensor {
                desc: &w_part,
                buffer: w.buffer,
            },
            bias_t,
            Tensor {
                desc: &o_part,
                buffer: out.buffer,
            },
            (1, x.desc.shape[0], len, x.desc.shape[1]),
            [0, w_sk, w_sn],
            binding,
        )?);
    }
    Ok(launches)
}

/// Records batched_mat_mul `a [B,M,K] · b [B,K,N]`.
pub(crate) fn batched_mat_mul(
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Launch> {
    let (a, b) = (ins[0], ins[1]);
    let s = &a.desc.shape;
    product(
        a,
        b,
        None,
        out,
        (s[0], s[1], b.desc.shape[2], s[2]),
        strides3(b.desc),
        binding,
    )
}

/// One product launch; `dims` are (batch, m, n, k) and `b_strides` the
/// right operand's element strides along (batch, k, n).
fn product(
    a: Tensor<'_>,
    b: Tensor<'_>,
    bias: Option<Tensor<'_>>,
    out: Tensor<'_>,
    dims: (usize, usize, usize, usize),
    b_strides: [u32; 3],
    binding: &Binding,
) -> Result<Launch> {
    let (batch, m, n, k) = dims;
    let args = vec![
        Arg::read("a", a, binding)?,
        Arg::read("b", b, binding)?,
        Arg::read("c", bias.unwrap_or(a), binding)?,
        Arg::write("o", out, binding)?,
    ];
    let [a_sb, a_sm, a_sk] = strides3(a.desc);
    let [o_sb, o_sm, o_sn] = strides3(out.desc);
    let scalars = [
        batch as u32,
        m as u32,
        n as u32,
        k as u32,
        a_sb,
        a_sm,
        a_sk,
        b_strides[0],
        b_strides[1],
        b_strides[2],
        o_sb,
        o_sm,
        o_sn,
        u32::from(bias.is_some()),
    ];
    let (kernel, grid) = if m <= ROWWISE_MAX_ROWS {
        (&ROWWISE, Grid::Groups((batch * m * n) as u32))
    } else {
        let grid = [n.div_ceil(16) as u32, m.div_ceil(16) as u32, batch as u32];
        if grid.iter().any(|&g| g > MAX_GROUPS) {
            return Err(HalError::invalid(
                "wgpu",
                format!("a product of {batch}×{m}×{n} needs more than {MAX_GROUPS} workgroups along one axis"),
            ));
        }
        (&TILED, Grid::Exact(grid))
    };
    Ok(Launch::new(
        kernel,
        args,
        &scalars,
        grid,
        binding.native_f16,
    ))
}
