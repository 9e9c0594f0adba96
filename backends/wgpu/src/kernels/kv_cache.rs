//! kv_write: rows into a KV cache at explicit positions, one thread per
//! element, converting to the cache's dtype. A position outside the cache
//! writes nothing and is reported at the next wait.

use glmhal_hal::Result;

use super::wgsl::status;
use super::{Arg, Binding, Grid, Kernel, Launch, Tensor};

static KV_WRITE: Kernel = Kernel {
    name: "kv_write",
    scalars: &[
        ("n", "u32"),
        ("row", "u32"),
        ("capacity", "u32"),
        ("code", "u32"),
    ],
    helpers: &[],
    status: true,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    // rows [T, kv, D] -> cache [C, kv, D] at positions [T]; positions outside the cache write nothing.
    let e = flat(g, nw);
    if (e >= p.n) { return; }
    let t = e / p.row;
    let pos = bitcast<u32>(ldi_pos(at(p.pos, t)));
    if (pos >= p.capacity) {
        if (e % p.row == 0u) { report(p.code, pos); }
        return;
    }
    st_o(at(p.o, pos * p.row + e % p.row), ld_x(at(p.x, e)));
}
"#,
};

/// Records kv_write of `rows [T, kv, D]` into `cache` at `positions [T]`.
pub(crate) fn launch(
    rows: Tensor<'_>,
    positions: Tensor<'_>,
    cache: Tensor<'_>,
    binding: &Binding,
) -> Result<Launch> {
    let s = &rows.desc.shape;
    let row = (s[1] * s[2]) as u32;
    let n = s[0] as u32 * row;
    let args = vec![
        Arg::read("x", rows, binding)?,
        Arg::read("pos", positions, binding)?,
        Arg::write("o", cache, binding)?,
    ];
    let scalars = [
        n,
        row,
        cache.desc.shape[0] as u32,
        status::POSITION_OUT_OF_RANGE,
    ];
    Ok(Launch::new(
        &KV_WRITE,
        args,
        &scalars,
        Grid::Threads(n),
        binding.native_f16,
    ))
}
