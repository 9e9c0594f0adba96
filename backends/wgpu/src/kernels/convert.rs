//! cast and quantize. cast is a copy, one thread per element: the operands'
//! loads decode (f16, bf16, Q8_0, Q4_0) and the stores round to nearest even.
//! quantize packs f32/f16/bf16 rows into Q8_0 or Q4_0 blocks with ggml's
//! rounding, one thread per 32-value block.

use glmhal_hal::{DType, Result};

use super::{Arg, Binding, Grid, Kernel, Launch, Tensor};

static CAST: Kernel = Kernel {
    name: "cast",
    scalars: &[("n", "u32")],
    helpers: &[],
    status: false,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(g, nw);
    if (e >= p.n) { return; }
    st_o(at(p.o, e), ld_x(at(p.x, e)));
}
"#,
};

static QUANTIZE: Kernel = Kernel {
    name: "quantize",
    scalars: &[("blocks", "u32"), ("q4", "u32")],
    helpers: &[],
    status: false,
    body: r#"
// Rounds half away from zero, like C's roundf (WGSL's round() goes to even).
fn round_away(x: f32) -> f32 { return sign(x) * floor(abs(x) + 0.5); }

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let blk = flat(g, nw);
    if (blk >= p.blocks) { return; }
    let first = blk * 32u;
    var amax = 0.0;
    var mx = 0.0;
    for (var j = 0u; j < 32u; j++) {
        let v = ld_x(at(p.x, first + j));
        if (abs(v) > amax) { amax = abs(v); mx = v; }
    }
    var bytes = 34u;
    var d = amax / 127.0;
    if (p.q4 != 0u) { bytes = 18u; d = mx / -8.0; }
    var id = 0.0;
    if (d != 0.0) { id = 1.0 / d; }
    let base = p.o.offset + at(p.o, first) / 32u * bytes;
    let dh = f32_to_f16_bits(d);
    stb_o(base, dh);
    stb_o(base + 1u, dh >> 8u);
    if (p.q4 == 0u) {
        for (var j = 0u; j < 32u; j++) {
            let q = i32(round_away(ld_x(at(p.x, first + j)) * id));
            stb_o(base + 2u + j, bitcast<u32>(q));
        }
    } else {
        for (var j = 0u; j < 16u; j++) {
            let lo = min(15u, u32(max(ld_x(at(p.x, first + j)) * id + 8.5, 0.0)));
            let hi = min(15u, u32(max(ld_x(at(p.x, first + j + 16u)) * id + 8.5, 0.0)));
            stb_o(base + 2u + j, lo | (hi << 4u));
        }
    }
}
"#,
};

/// Records cast of `x` into `out`'s dtype.
pub(crate) fn cast(x: Tensor<'_>, out: Tensor<'_>, binding: &Binding) -> Result<Launch> {
    let n = out.desc.numel() as u32;
    let args = vec![Arg::read("x", x, binding)?, Arg::write("o", out, binding)?];
    Ok(Launch::new(
        &CAST,
        args,
        &[n],
        Grid::Threads(n),
        binding.native_f16,
    ))
}

/// Records quantize of `x` into `out` (Q8_0 or Q4_0).
pub(crate) fn quantize(x: Tensor<'_>, out: Tensor<'_>, binding: &Binding) -> Result<Launch> {
    let blocks = (x.desc.numel() / 32) as u32;
    let args = vec![Arg::read("x", x, binding)?, Arg::write("o", out, binding)?];
    Ok(Launch::new(
        &QUANTIZE,
        args,
        &[blocks, u32::from(out.desc.dtype == DType::Q4_0)],
        Grid::Threads(blocks),
        binding.native_f16,
    ))
}
