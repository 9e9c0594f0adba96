//! Which entry point of the kernel tree runs an op, with which launch shape
//! and arguments: shared by the CUDA, HIP and OpenCL backends, so an op maps
//! to the same kernel on every vendor. One file per kernel file of the tree
//! (`attention.rs` plans `attention.cu`, ...).

mod attention;
mod convert;
mod elementwise;
mod embedding;
mod kv_cache;
mod matmul;
mod norm;
mod reduce;
mod rope;
mod view;

use glmhal_hal::{DType, Op, Precision, Result, Support, TensorDesc};

pub use view::View;

/// Threads per block of every kernel (`GLMHAL_BLOCK` in `compat.h`).
pub const BLOCK: u32 = 256;
/// Largest head_dim the attention kernel holds (`GLMHAL_MAX_HEAD_DIM`).
pub const MAX_HEAD_DIM: usize = 256;
/// Rows at or below which mat_mul uses the matvec kernel (when the BLAS does not take it).
pub const MATVEC_MAX_ROWS: usize = 8;

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

/// Whether the kernel tree covers `op` with these tensors (a call the
/// contract accepts), and why not.
pub fn supports(op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
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
    if glmhal_ops::validate(op, inputs, outputs).is_err()
        || supports(op, inputs, outputs) != Support::Supported
    {
        return Ok(None);
    }
    plan(op, inputs, &outputs[0], warp).map(Some)
}

/// The launches that run `op` (already validated and supported).
/// `warp` is the device's warp (wavefront) width.
pub fn plan(op: &Op, ins: &[TensorDesc], out: &TensorDesc, warp: u32) -> Result<Vec<Launch>> {
    let single = match op {
        Op::Add | Op::Mul => elementwise::binary(op, ins, out)?,
        Op::Scale { .. } | Op::Silu | Op::Gelu | Op::SwiGlu | Op::Cast => {
            elementwise::unary(op, ins, out)?
        }
        Op::RmsNorm { eps } => norm::norm(false, *eps, ins, out)?,
        Op::LayerNorm { eps } => norm::norm(true, *eps, ins, out)?,
        Op::Softmax { scale, causal } => reduce::softmax(*scale, *causal, ins, out)?,
        Op::Argmax => reduce::argmax(ins, out)?,
        Op::MatMul { bias } => return matmul::mat_mul(ins, out, *bias, warp),
        Op::BatchedMatMul => matmul::batched(ins, out)?,
        Op::GetRows => embedding::get_rows(ins, out)?,
        Op::Rope { rot, theta, mode } => rope::rope(*rot, *theta, *mode, ins, out)?,
        Op::KvWrite => kv_cache::kv_write(ins, out)?,
        Op::Attention { scale, causal } => attention::attention(*scale, *causal, ins, out)?,
        Op::Quantize => convert::quantize(ins, out)?,
    };
    Ok(vec![single])
}

/// One launch of `entry` in `file` on `grid` blocks of [`BLOCK`] threads.
fn launch(file: &'static str, entry: String, grid: [u32; 3], args: Vec<Arg>) -> Launch {
    Launch {
        file,
        entry,
        grid,
        block: BLOCK,
        args,
    }
}

/// The view of `d` over its own shape, as an argument.
fn view(d: &TensorDesc) -> Result<Arg> {
    View::of(d, &d.shape).map(Arg::View)
}
