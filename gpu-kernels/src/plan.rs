//! Which entry point of the kernel tree runs an op, with which launch shape
//! and arguments: shared by the CUDA, HIP and OpenCL backends, so an op maps
//! to the same kernel on every vendor.

use glmhal_hal::{DType, HalError, Op, Precision, Result, RopeMode, Support, TensorDesc};

/// Threads per block of every kernel (`GLMHAL_BLOCK` in `compat.h`).
pub const BLOCK: u32 = 256;
/// Largest head_dim the attention kernel holds (`GLMHAL_MAX_HEAD_DIM`).
pub const MAX_HEAD_DIM: usize = 256;
/// Rows at or below which mat_mul uses the matvec kernel (when the BLAS does not take it).
pub const MATVEC_MAX_ROWS: usize = 8;

/// A view as the kernels' `struct View` lays it out (48 bytes, 8-aligned).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct View {
    /// Elements (bytes for Q8_0/Q4_0) from the buffer start.
    pub offset: u64,
    /// Innermost dim and its stride, then the two dims above it.
    pub cols: u32,
    /// Stride of the innermost dim.
    pub col_stride: u32,
    /// Second outermost of the folded outer dims.
    pub d1: u32,
    /// Innermost of the folded outer dims.
    pub d2: u32,
    /// Outer strides (elements).
    pub s0: u64,
    /// Outer strides (elements).
    pub s1: u64,
    /// Outer strides (elements).
    pub s2: u64,
}

impl View {
    /// The view of `desc` read as `shape` (size-1 dims of `desc` broadcast).
    pub fn of(desc: &TensorDesc, shape: &[usize]) -> Result<Self> {
        let (dims, strides) = desc.folded4(shape).ok_or_else(|| {
            HalError::invalid(
                "gpu",
                format!("views of rank {} are not supported", shape.len()),
            )
        })?;
        let offset = if desc.dtype.is_quantized() {
            desc.offset
        } else {
            desc.offset / desc.dtype.block_bytes()
        };
        let small = |x: usize| {
            u32::try_from(x)
                .map_err(|_| HalError::invalid("gpu", format!("dimension {x} exceeds 32 bits")))
        };
        Ok(View {
            offset: offset as u64,
            cols: small(dims[3])?,
            col_stride: small(strides[3])?,
            d1: small(dims[1])?,
            d2: small(dims[2])?,
            s0: strides[0] as u64,
            s1: strides[1] as u64,
            s2: strides[2] as u64,
        })
    }

    /// Its bytes, as the kernel parameter.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(48);
        b.extend(self.offset.to_le_bytes());
        for w in [self.cols, self.col_stride, self.d1, self.d2] {
            b.extend(w.to_le_bytes());
        }
        for s in [self.s0, self.s1, self.s2] {
            b.extend(s.to_le_bytes());
        }
        b
    }
}

/// One kernel argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// The device address of tensor `i` (inputs, then outputs).
    Tensor(usize),
    /// A view.
    View(View),
    /// Scalars.
    U32(u32),
    /// Scalars.
    U64(u64),
    /// Scalars.
    I32(i32),
    /// Scalars.
    F32(f32),
    /// The product kernel's element strides (a, b, o) × (batch, rows, cols).
    Strides([u64; 9]),
    /// The device address of the backend's status words.
    Status,
}

/// One launch of one entry point.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The source file (module) holding the entry point.
    pub file: &'static str,
    /// The entry point.
    pub entry: String,
    /// Blocks per grid dimension.
    pub grid: [u32; 3],
    /// Threads per block.
    pub block: u32,
    /// Arguments in order.
    pub args: Vec<Arg>,
}

fn dt(d: DType) -> &'static str {
    d.name()
}

/// Blocks for a grid-stride loop over `n` items.
fn stride_grid(n: usize) -> [u32; 3] {
    [(n.div_ceil(BLOCK as usize)).clamp(1, 1 << 20) as u32, 1, 1]
}

/// One block per row, folded into x and y.
fn row_grid(rows: usize) -> [u32; 3] {
    let x = rows.clamp(1, 65535);
    [x as u32, rows.div_ceil(65535).max(1) as u32, 1]
}

fn strides3(d: &TensorDesc) -> [u64; 3] {
    match d.strides.as_slice() {
        [r, c] => [0, *r as u64, *c as u64],
        [b, r, c] => [*b as u64, *r as u64, *c as u64],
        _ => [0, 0, 1],
    }
}

/// Error of the elementary functions the kernels call (`expf`, `tanhf`,
/// `rsqrtf`, `powf`, `sinf`, `cosf`), in units of f32 roundoff: the
/// largest the vendors document without fast-math (OpenCL's `pow`, 16 ulp;
/// CUDA's and HIP's are within 2–4).
pub const FUNCTION_ULPS: f64 = 16.0;

/// Every kernel and vendor BLAS call computes in f32 (16-bit values widened
/// as they are read, quantized weights dequantized, no TF32).
pub fn precision(_op: &Op, _inputs: &[TensorDesc], _outputs: &[TensorDesc]) -> Precision {
    Precision::F32.with_function_ulps(FUNCTION_ULPS)
}

/// Whether the kernel tree covers `op` with these tensors, and why not.
pub fn supports(op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
    if let Err(e) = glmhal_ops::validate(op, inputs, outputs) {
        return Support::Unsupported(e.to_string());
    }
    if inputs.iter().chain(outputs).any(|t| t.rank() > 4) {
        return Support::Unsupported("the GPU kernels take tensors of rank 4 or less".into());
    }
    match op {
        Op::Attention { .. } if inputs[0].last_dim() > MAX_HEAD_DIM => {
            Support::Unsupported(format!(
                "the attention kernel holds head_dim up to {MAX_HEAD_DIM}, not {}",
                inputs[0].last_dim()
            ))
        }
        Op::Attention { .. } if inputs[1].dtype != inputs[2].dtype => {
            Support::Unsupported("the attention kernel needs k and v in one dtype".into())
        }
        Op::LayerNorm { .. } if inputs[1].dtype != inputs[2].dtype => {
            Support::Unsupported("the layer_norm kernel needs weight and bias in one dtype".into())
        }
        Op::RmsNorm { .. } | Op::LayerNorm { .. } | Op::Softmax { .. } | Op::Argmax
            if inputs[0].last_dim() > u32::MAX as usize =>
        {
            Support::Unsupported("rows longer than 2^32 elements".into())
        }
        _ => Support::Supported,
    }
}

/// The launches of `op` when the tree supports it with these tensors
/// (`None` when not), for checks over many calls.
pub fn plan_if_supported(
    op: &Op,
    inputs: &[TensorDesc],
    outputs: &[TensorDesc],
    warp: u32,
) -> Result<Option<Vec<Launch>>> {
    if supports(op, inputs, outputs) != Support::Supported {
        return Ok(None);
    }
    plan(op, inputs, &outputs[0], warp).map(Some)
}

/// The launches that run `op` (already validated and supported).
/// `warp` is the device's warp (wavefront) width.
pub fn plan(op: &Op, ins: &[TensorDesc], out: &TensorDesc, warp: u32) -> Result<Vec<Launch>> {
    let o = ins.len(); // the output's tensor index
    let view = |d: &TensorDesc| View::of(d, &d.shape).map(Arg::View);
    let n = out.numel();
    let launch = |file, entry: String, grid, args| Launch {
        file,
        entry,
        grid,
        block: BLOCK,
        args,
    };
    Ok(vec![match op {
        Op::Add | Op::Mul => {
            let (a, b) = (&ins[0], &ins[1]);
            launch(
                "elementwise.cu",
                format!("binary_{}_{}_{}", dt(a.dtype), dt(b.dtype), dt(out.dtype)),
                stride_grid(n),
                vec![
                    Arg::Tensor(0),
                    view(a)?,
                    Arg::Tensor(1),
                    Arg::View(View::of(b, &a.shape)?),
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U64(n as u64),
                    Arg::I32(i32::from(matches!(op, Op::Mul))),
                ],
            )
        }
        Op::Scale { .. } | Op::Silu | Op::Gelu | Op::SwiGlu | Op::Cast => {
            let x = &ins[0];
            let (kind, factor) = match op {
                Op::Scale { factor } => (0, *factor as f32),
                Op::Silu => (1, 0.0),
                Op::Gelu => (2, 0.0),
                Op::SwiGlu => (3, 0.0),
                _ => (4, 0.0),
            };
            launch(
                "elementwise.cu",
                format!("unary_{}_{}", dt(x.dtype), dt(out.dtype)),
                stride_grid(n),
                vec![
                    Arg::Tensor(0),
                    view(x)?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U64(n as u64),
                    Arg::I32(kind),
                    Arg::F32(factor),
                    Arg::U64(out.last_dim() as u64),
                ],
            )
        }
        Op::RmsNorm { eps } | Op::LayerNorm { eps } => {
            let (x, w) = (&ins[0], &ins[1]);
            let layer = matches!(op, Op::LayerNorm { .. });
            let b = if layer { 2 } else { 1 };
            launch(
                "norm.cu",
                format!("norm_{}_{}_{}", dt(x.dtype), dt(w.dtype), dt(out.dtype)),
                row_grid(x.rows()),
                vec![
                    Arg::Tensor(0),
                    view(x)?,
                    Arg::Tensor(1),
                    view(w)?,
                    Arg::Tensor(b),
                    view(&ins[b])?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U32(x.rows() as u32),
                    Arg::U32(x.last_dim() as u32),
                    Arg::I32(i32::from(layer)),
                    Arg::F32(*eps as f32),
                ],
            )
        }
        Op::Softmax { scale, causal } => {
            let x = &ins[0];
            launch(
                "reduce.cu",
                format!("softmax_{}_{}", dt(x.dtype), dt(out.dtype)),
                row_grid(x.rows()),
                vec![
                    Arg::Tensor(0),
                    view(x)?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U32(x.rows() as u32),
                    Arg::U32(x.last_dim() as u32),
                    Arg::F32(*scale as f32),
                    Arg::I32(i32::from(*causal)),
                ],
            )
        }
        Op::Argmax => {
            let x = &ins[0];
            launch(
                "reduce.cu",
                format!("argmax_{}", dt(x.dtype)),
                row_grid(x.rows()),
                vec![
                    Arg::Tensor(0),
                    view(x)?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U32(x.rows() as u32),
                    Arg::U32(x.last_dim() as u32),
                    Arg::Status,
                ],
            )
        }
        Op::MatMul { bias } => return mat_mul(ins, out, *bias, warp),
        Op::BatchedMatMul => {
            let (a, b) = (&ins[0], &ins[1]);
            product(
                a,
                b,
                None,
                out,
                (a.shape[0], a.shape[1], b.shape[2], a.shape[2]),
                strides3(b),
                o,
            )?
        }
        Op::GetRows => {
            let (t, ids) = (&ins[0], &ins[1]);
            launch(
                "embedding.cu",
                format!("get_rows_{}_{}", dt(t.dtype), dt(out.dtype)),
                stride_grid(n),
                vec![
                    Arg::Tensor(0),
                    view(t)?,
                    Arg::Tensor(1),
                    view(ids)?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U64(ids.shape[0] as u64),
                    Arg::U32(t.shape[1] as u32),
                    Arg::U32(t.shape[0] as u32),
                    Arg::Status,
                ],
            )
        }
        Op::Rope { rot, theta, mode } => {
            let x = &ins[0];
            launch(
                "rope.cu",
                format!("rope_{}_{}", dt(x.dtype), dt(out.dtype)),
                stride_grid(n),
                vec![
                    Arg::Tensor(0),
                    view(x)?,
                    Arg::Tensor(1),
                    view(&ins[1])?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U32(x.shape[0] as u32),
                    Arg::U32(x.shape[1] as u32),
                    Arg::U32(x.shape[2] as u32),
                    Arg::U32(*rot as u32),
                    Arg::F32(*theta as f32),
                    Arg::I32(i32::from(*mode == RopeMode::Neox)),
                ],
            )
        }
        Op::KvWrite => {
            let x = &ins[0];
            let rows = x.numel();
            launch(
                "kv_cache.cu",
                format!("kv_write_{}_{}", dt(x.dtype), dt(out.dtype)),
                stride_grid(rows),
                vec![
                    Arg::Tensor(0),
                    view(x)?,
                    Arg::Tensor(1),
                    view(&ins[1])?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U64(rows as u64),
                    Arg::U32((x.shape[1] * x.shape[2]) as u32),
                    Arg::U32(out.shape[0] as u32),
                    Arg::Status,
                ],
            )
        }
        Op::Attention { scale, causal } => {
            let (q, k, v) = (&ins[0], &ins[1], &ins[2]);
            launch(
                "attention.cu",
                format!(
                    "attention_{}_{}_{}",
                    dt(q.dtype),
                    dt(k.dtype),
                    dt(out.dtype)
                ),
                row_grid(q.shape[0] * q.shape[1]),
                vec![
                    Arg::Tensor(0),
                    view(q)?,
                    Arg::Tensor(1),
                    view(k)?,
                    Arg::Tensor(2),
                    view(v)?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U32(q.shape[0] as u32),
                    Arg::U32(q.shape[1] as u32),
                    Arg::U32(q.shape[2] as u32),
                    Arg::U32(k.shape[0] as u32),
                    Arg::U32(k.shape[1] as u32),
                    Arg::F32(*scale as f32),
                    Arg::I32(i32::from(*causal)),
                ],
            )
        }
        Op::Quantize => {
            let x = &ins[0];
            let blocks = x.numel() / 32;
            launch(
                "convert.cu",
                format!("quantize_{}_{}", dt(x.dtype), dt(out.dtype)),
                stride_grid(blocks),
                vec![
                    Arg::Tensor(0),
                    view(x)?,
                    Arg::Tensor(o),
                    view(out)?,
                    Arg::U64(blocks as u64),
                ],
            )
        }
    }])
}

fn mat_mul(ins: &[TensorDesc], out: &TensorDesc, bias: bool, warp: u32) -> Result<Vec<Launch>> {
    let (x, w) = (&ins[0], &ins[1]);
    let o = ins.len();
    let (m, k, n) = (x.shape[0], x.shape[1], w.shape[0]);
    let bias_desc = bias.then(|| &ins[2]);
    if m <= MATVEC_MAX_ROWS && x.strides[1] == 1 && (w.dtype.is_quantized() || w.strides[1] == 1) {
        // One warp per output: BLOCK / warp outputs per block.
        let per_block = (BLOCK / warp.max(1)).max(1) as usize;
        let bias_view = View::of(bias_desc.unwrap_or(x), &bias_desc.unwrap_or(x).shape)?;
        return Ok(vec![Launch {
            file: "matmul.cu",
            entry: format!("matvec_{}_{}_{}", dt(x.dtype), dt(w.dtype), dt(out.dtype)),
            grid: [n.div_ceil(per_block).max(1) as u32, m as u32, 1],
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
            ],
        }]);
    }
    let [_, w_n, w_k] = strides3(w);
    Ok(vec![product(
        x,
        w,
        bias_desc,
        out,
        (1, m, n, k),
        [0, w_k, w_n],
        o,
    )?])
}

/// The dtype code `compat.h` uses for a bias (f32 when there is none).
fn bias_dtype_code(bias: Option<&TensorDesc>) -> i32 {
    match bias.map(|b| b.dtype) {
        Some(DType::F16) => 1,
        Some(DType::Bf16) => 2,
        _ => 0,
    }
}

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
    })
}
