//! get_rows: embedding lookup, one thread per output element, dequantizing
//! the rows it picks. A table larger than one storage binding is split by
//! rows into launches that each cover a range of ids. An id outside the table
//! fills its row with zeros and is reported at the next wait.

use glmhal_hal::Result;

use super::matmul::row_parts;
use super::wgsl::status;
use super::{Arg, Binding, Grid, Kernel, Launch, Tensor};

static GET_ROWS: Kernel = Kernel {
    name: "get_rows",
    scalars: &[
        ("n", "u32"),
        ("lo", "u32"),
        ("hi", "u32"),
        ("vocab", "u32"),
        ("first", "u32"),
        ("code", "u32"),
    ],
    helpers: &[],
    status: true,
    body: r#"
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>) {
    let e = flat(g, nw);
    let h = p.o.cols;
    if (e >= p.n * h) { return; }
    let id = bitcast<u32>(ldi_ids(at(p.ids, e / h)));
    if (id >= p.lo && id < p.hi) {
        st_o(at(p.o, e), ld_t(at(p.t, (id - p.lo) * h + e % h)));
    } else if (p.first != 0u && id >= p.vocab) {
        st_o(at(p.o, e), 0.0);
        if (e % h == 0u) { report(p.code, id); }
    }
}
"#,
};

/// Records get_rows: one launch per part of the table that fits a binding.
pub(crate) fn get_rows(
    ins: &[Tensor<'_>],
    out: Tensor<'_>,
    binding: &Binding,
) -> Result<Vec<Launch>> {
    let (table, ids) = (ins[0], ins[1]);
    let n = ids.desc.shape[0] as u32;
    let vocab = table.desc.shape[0];
    let mut launches = Vec::new();
    for (i, (start, len, part)) in row_parts(table.desc, binding)?.into_iter().enumerate() {
        let part = Tensor {
            desc: &part,
            buffer: table.buffer,
        };
        let args = vec![
            Arg::read("t", part, binding)?,
            Arg::read("ids", ids, binding)?,
            Arg::write("o", out, binding)?,
        ];
        let scalars = [
            n,
            start as u32,
            (start + len) as u32,
            vocab as u32,
            u32::from(i == 0),
            status::ROW_OUT_OF_RANGE,
        ];
        let grid = Grid::Threads(out.desc.numel() as u32);
        launches.push(Launch::new(
            &GET_ROWS,
            args,
            &scalars,
            grid,
            binding.native_f16,
        ));
    }
    Ok(launches)
}
