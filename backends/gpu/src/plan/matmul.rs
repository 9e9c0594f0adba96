//! Products: the matvec kernel for up to [`MATVEC_MAX_ROWS`] rows (one warp
//! per output column, every row in one pass over the weights), the tiled
//! product kernel otherwise; a bias is added in the kernel.

use glmhal_hal::{DType, Result, TensorDesc};

use super::embedding::row_bytes;
use super::{bytes, dt, strides3, Arg, Context, Launch, View, BLOCK, MATVEC_MAX_ROWS};

/// `mat_mul`: `x · wᵀ (+ bias)`.
pub(super) fn mat_mul(
    ins: &[TensorDesc],
    out: &TensorDesc,
    bias: bool,
    context: Context,
) -> Result<Vec<Launch>> {
    let (x, w) = (&ins[0], &ins[1]);
    let o = ins.len();
    let (m, k, n) = (x.shape[0], x.shape[1], w.shape[0]);
    let bias_desc = bias.then(|| &ins[2]);
    let packed = context.is_packed(1);
    let weight_bytes = if packed {
        row_bytes(w, true) * n as u64
    } else {
        bytes(w)
    };
    if uses_matvec(x, w) {
        // One warp per output: BLOCK / warp outputs per block.
        let per_block = (BLOCK / context.warp.max(1)).max(1) as usize;
        let bias_view = View::of(bias_desc.unwrap_or(x), &bias_desc.unwrap_or(x).shape)?;
        return Ok(vec![Launch {
            file: "matmul.cu",
            entry: format!(
                "matvec_{}_{}_{}",
                dt(x.dtype),
                context.token(1, w.dtype),
                dt(out.dtype)
            ),
            grid: [n.div_ceil(per_block).max(1) as u32, 1, 1],
            block: BLOCK,
            args: vec![
                Arg::Tensor(0),
                Arg::View(View::of(x, &x.shape)?),
                Arg::Tensor(1),
                Arg::View(View::of(w, &w.shape)?),
                Arg::Tensor(if bias { 2 } else { 0 }),
                Arg::View(bias_view),
                Arg::I32(bias_dtype_code(bias_desc)),
                Arg::Tensor(o),
                Arg::View(View::of(out, &out.shape)?),
                Arg::U32(m as u32),
                Arg::U32(n as u32),
                Arg::U32(k as u32),
                Arg::I32(i32::from(bias)),
                Arg::I32(i32::from(rows_aligned(w))),
            ],
            // Every row in one pass: the weights are read once.
            reads: weight_bytes + bytes(x) + bias_desc.map_or(0, bytes),
        }]);
    }
    let [_, w_n, w_k] = strides3(w);
    let mut launch = product(x, w, bias_desc, out, (1, m, n, k), [0, w_k, w_n], o)?;
    if packed {
        launch.entry = format!(
            "product_{}_{}_{}",
            dt(x.dtype),
            context.token(1, w.dtype),
            dt(out.dtype)
        );
        launch.reads = product_reads(x, weight_bytes, bias_desc, m, n);
    }
    Ok(vec![launch])
}

/// Whether `x · wᵀ` runs on the matvec kernel: few rows, unit-stride rows.
pub(crate) fn uses_matvec(x: &TensorDesc, w: &TensorDesc) -> bool {
    x.shape[0] <= MATVEC_MAX_ROWS
        && x.strides[1] == 1
        && (w.dtype.is_quantized() || w.strides[1] == 1)
}

/// `matvec_swiglu_f32_<w>_f32` over tensors `[x, w, gate_up, activation]`:
/// the gate/up product of `x` (on the matvec kernel) and SwiGLU of it.
pub(crate) fn matvec_swiglu(t: &[TensorDesc; 4], context: Context) -> Result<Launch> {
    let (x, w) = (&t[0], &t[1]);
    let half = w.shape[0] / 2;
    let per_block = (BLOCK / context.warp.max(1)).max(1) as usize;
    let weight_bytes = if context.is_packed(1) {
        row_bytes(w, true) * w.shape[0] as u64
    } else {
        bytes(w)
    };
    let mut args = Vec::with_capacity(12);
    for (i, desc) in t.iter().enumerate() {
        args.push(Arg::Tensor(i));
        args.push(Arg::View(View::of(desc, &desc.shape)?));
    }
    args.extend([
        Arg::U32(x.shape[0] as u32),
        Arg::U32(half as u32),
        Arg::U32(x.shape[1] as u32),
        Arg::I32(i32::from(rows_aligned(w))),
    ]);
    Ok(Launch {
        file: "matmul.cu",
        entry: format!("matvec_swiglu_f32_{}_f32", context.token(1, w.dtype)),
        grid: [half.div_ceil(per_block).max(1) as u32, 1, 1],
        block: BLOCK,
        args,
        reads: weight_bytes + bytes(x),
    })
}

/// Whether every row of the float weight `w` starts 16-byte aligned and
/// holds whole 16-byte chunks, so the matvec loads 16 bytes per lane
/// (buffers themselves are 256-byte aligned).
fn rows_aligned(w: &TensorDesc) -> bool {
    let size = match w.dtype {
        DType::F32 => 4,
        DType::F16 | DType::Bf16 => 2,
        _ => return false,
    };
    let k = w.shape[1];
    w.strides[1] == 1
        && w.offset.is_multiple_of(16)
        && (w.strides[0] * size).is_multiple_of(16)
        && (k * size).is_multiple_of(16)
}

/// The dtype code `compat.h` uses for a bias (f32 when there is none).
fn bias_dtype_code(bias: Option<&TensorDesc>) -> i32 {
    match bias.map(|b| b.dtype) {
        Some(DType::F16) => 1,
        Some(DType::Bf16) => 2,
        _ => 0,
    }
}

/// `batched_mat_mul`: `a[i] · b[i]` for every batch index.
pub(super) fn batched(ins: &[TensorDesc], out: &TensorDesc) -> Result<Launch> {
    let (a, b) = (&ins[0], &ins[1]);
    product(
        a,
        b,
        None,
        out,
        (a.shape[0], a.shape[1], b.shape[2], a.shape[2]),
        strides3(b),
        ins.len(),
    )
}

/// Each 16-row tile walks b's columns and each 16-column tile a's rows.
fn product_reads(
    a: &TensorDesc,
    b_bytes: u64,
    bias: Option<&TensorDesc>,
    m: usize,
    n: usize,
) -> u64 {
    bytes(a) * n.div_ceil(16) as u64 + b_bytes * m.div_ceil(16) as u64 + bias.map_or(0, bytes)
}

/// The tiled product of `a` and `b` over `batch` matrices.
fn product(
    a: &TensorDesc,
    b: &TensorDesc,
    bias: Option<&TensorDesc>,
    out: &TensorDesc,
    (batch, m, n, k): (usize, usize, usize, usize),
    b_strides: [u64; 3],
    o: usize,
) -> Result<Launch> {
    let [a_b, a_m, a_k] = strides3(a);
    let [o_b, o_m, o_n] = strides3(out);
    let bias_view = match bias {
        Some(d) => View::of(d, &d.shape)?,
        None => View::of(a, &a.shape)?,
    };
    Ok(Launch {
        file: "matmul.cu",
        entry: format!("product_{}_{}_{}", dt(a.dtype), dt(b.dtype), dt(out.dtype)),
        grid: [n.div_ceil(16) as u32, m.div_ceil(16) as u32, batch as u32],
        block: BLOCK,
        args: vec![
            Arg::Tensor(0),
            Arg::View(View::of(a, &a.shape)?),
            Arg::Tensor(1),
            Arg::View(View::of(b, &b.shape)?),
            Arg::Tensor(if bias.is_some() { 2 } else { 0 }),
            Arg::View(bias_view),
            Arg::I32(bias_dtype_code(bias)),
            Arg::Tensor(o),
            Arg::View(View::of(out, &out.shape)?),
            Arg::U32(m as u32),
            Arg::U32(n as u32),
            Arg::U32(k as u32),
            Arg::Strides([
                a_b,
                a_m,
                a_k,
                b_strides[0],
                b_strides[1],
                b_strides[2],
                o_b,
                o_m,
                o_n,
            ]),
            Arg::I32(i32::from(bias.is_some())),
        ],
        reads: product_reads(a, bytes(b), bias, m, n),
    })
}
