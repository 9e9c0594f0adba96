//! Which entry point of the kernel tree runs an op, with which launch shape
//! and arguments: shared by the CUDA, HIP and OpenCL backends, so an op maps
//! to the same kernel on every vendor. One file per kernel file of the tree
//! (`attention.rs` plans `attention.cu`, ...).

pub mod attention;
mod convert;
mod elementwise;
mod embedding;
pub(crate) mod experts;
mod kv_cache;
pub(crate) mod matmul;
pub(crate) mod norm;
mod reduce;
pub(crate) mod rope;
mod view;

use glmhal_hal::{DType, Op, Precision, Result, Support, TensorDesc};

pub use view::View;

/// Threads per block of every kernel (`GLMHAL_BLOCK` in `compat.h`).
pub const BLOCK: u32 = 256;
/// Largest head_dim the attention kernel holds (`GLMHAL_MAX_HEAD_DIM`).
pub const MAX_HEAD_DIM: usize = 256;
/// Rows at or below which mat_mul uses the matvec kernel (when the BLAS does not take it).
pub const MATVEC_MAX_ROWS: usize = 8;

/// What the planner knows beyond the descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The device's warp (wavefront) width.
    pub warp: u32,
    /// Bit i set: input i is a weight `prepare_weight` stored packed
    /// ([`crate::packed`]).
    pub packed: u8,
}

impl Context {
    /// A device of warp width `warp`, every input as the descriptors say.
    pub fn warp(warp: u32) -> Self {
        Context { warp, packed: 0 }
    }

    /// Whether input `i` is packed.
    pub fn is_packed(&self, i: usize) -> bool {
        i < 8 && self.packed & (1 << i) != 0
    }

    /// The entry-point token of input `i` of dtype `d` (`q8_0r` when packed).
    pub(crate) fn token(&self, i: usize, d: DType) -> &'static str {
        match (self.is_packed(i), d) {
            (true, DType::Q8_0) => "q8_0r",
            (true, DType::Q4_0) => "q4_0r",
            _ => d.name(),
        }
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
    /// Scratch device memory of this many bytes, the same for every launch
    /// of one op (the backend allocates it for the op).
    Workspace(u64),
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
    /// Bytes the launch reads from device memory: each operand once per
    /// pass the kernel makes over it (see `WorkCounters::bytes_read`).
    pub reads: u64,
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
        Op::MoeSelect { .. } if inputs[0].last_dim() > experts::MOE_MAX_EXPERTS => {
            Support::Unsupported(format!(
                "the moe_select kernel holds up to {} experts, not {}",
                experts::MOE_MAX_EXPERTS,
                inputs[0].last_dim()
            ))
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
    context: Context,
) -> Result<Option<Vec<Launch>>> {
    if glmhal_ops::validate(op, inputs, outputs).is_err()
        || supports(op, inputs, outputs) != Support::Supported
    {
        return Ok(None);
    }
    plan(op, inputs, &outputs[0], context).map(Some)
}

/// Whether input `i` of `op` has entry points for a packed weight: the
/// weights of `mat_mul` and the table of `get_rows`.
pub fn reads_packed(op: &Op, i: usize) -> bool {
    matches!((op, i), (Op::MatMul { .. }, 1) | (Op::GetRows, 0))
}

/// The launches that run `op` (already validated and supported) on a
/// device and buffers as `context` describes.
pub fn plan(
    op: &Op,
    ins: &[TensorDesc],
    out: &TensorDesc,
    context: Context,
) -> Result<Vec<Launch>> {
    for (i, d) in ins.iter().enumerate() {
        if context.is_packed(i) && !(reads_packed(op, i) && crate::packed::packs(d)) {
            return Err(glmhal_hal::HalError::invalid(
                "gpu",
                format!(
                    "a prepared {} weight is read whole by mat_mul and get_rows only, not as input {i} of {} ({d:?})",
                    d.dtype,
                    op.kind()
                ),
            ));
        }
    }
    let single = match op {
        Op::Add | Op::Mul => elementwise::binary(op, ins, out)?,
        Op::Scale { .. } | Op::Silu | Op::Gelu | Op::SwiGlu | Op::Cast => {
            elementwise::unary(op, ins, out)?
        }
        Op::RmsNorm { eps } => norm::norm(false, *eps, ins, out)?,
        Op::LayerNorm { eps } => norm::norm(true, *eps, ins, out)?,
        Op::Softmax { scale, causal } => reduce::softmax(*scale, *causal, ins, out)?,
        Op::Argmax => reduce::argmax(ins, out)?,
        Op::MatMul { bias } => return matmul::mat_mul(ins, out, *bias, context),
        Op::BatchedMatMul => matmul::batched(ins, out)?,
        Op::GetRows => embedding::get_rows(ins, out, context)?,
        Op::Rope { rot, theta, mode } => rope::rope(*rot, *theta, *mode, ins, out)?,
        Op::KvWrite => kv_cache::kv_write(ins, out)?,
        Op::Attention { scale, causal } => return attention::attention(*scale, *causal, ins, out),
        Op::Quantize => convert::quantize(ins, out)?,
        Op::MatMulId => experts::mat_mul_id(ins, out, context)?,
        Op::MoeSelect {
            top_k,
            n_group,
            topk_group,
        } => experts::moe_select(ins, out, (*top_k, *n_group, *topk_group))?,
        Op::MoeWeights { normalize, scale } => {
            experts::moe_weights(ins, out, (*normalize, *scale))?
        }
    };
    Ok(vec![single])
}

/// One launch of `entry` in `file` on `grid` blocks of [`BLOCK`] threads,
/// reading `reads` bytes.
fn launch(file: &'static str, entry: String, grid: [u32; 3], args: Vec<Arg>, reads: u64) -> Launch {
    Launch {
        file,
        entry,
        grid,
        block: BLOCK,
        args,
        reads,
    }
}

/// The bytes of the elements `d` views.
pub(crate) fn bytes(d: &TensorDesc) -> u64 {
    d.dtype.bytes_for(d.numel()) as u64
}

/// Every input read once: the reads of a kernel that streams its inputs.
pub(crate) fn once(ins: &[TensorDesc]) -> u64 {
    ins.iter().map(bytes).sum()
}

/// The view of `d` over its own shape, as an argument.
fn view(d: &TensorDesc) -> Result<Arg> {
    View::of(d, &d.shape).map(Arg::View)
}
