//! Every mutant, by op family. Each is a bug a real kernel has had.

use glmhal_hal::{quant::round_to, ActivationQuant, DType, HostTensor, Op, OpKind, QUANT_BLOCK};
use half::{bf16, f16};

use super::kernels::{ArgmaxBug, AttentionBug, CastBug, Kernel, NormBug, PointwiseBug, SoftmaxBug};
use super::{Mutant, Plant};

pub(super) const fn mutant(
    name: &'static str,
    op: OpKind,
    bug: &'static str,
    plant: Plant,
) -> Mutant {
    Mutant {
        name,
        op,
        bug,
        plant,
        declares: None,
    }
}

/// Every mutant, in catalogue order of their ops.
pub fn all() -> Vec<Mutant> {
    [
        embedding(),
        mat_mul_arithmetic(),
        mat_mul_weights(),
        mat_mul_execution(),
        batched_mat_mul(),
        norms(),
        rope(),
        attention(),
        pointwise(),
        conversions_and_cache(),
        reductions(),
        super::experts::all(),
    ]
    .concat()
}

/// Embedding: gathering rows of the token table.
fn embedding() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "get-rows-id-off-by-one",
            K::GetRows,
            "reads row id+1",
            Plant::Inputs(|_, t| {
                let vocab = t[0].desc.shape[0] as i32;
                map_i32(&mut t[1], |id| (id + 1) % vocab);
            }),
        ),
        mutant(
            "get-rows-q4-nibbles-swapped",
            K::GetRows,
            "Q4_0 low and high nibbles in the wrong order",
            Plant::Inputs(|_, t| {
                swap_nibbles(&mut t[0]);
            }),
        ),
    ]
}

/// Matrix products: activations rounded, partial sums in f16, a dropped K element.
fn mat_mul_arithmetic() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "matmul-activations-bf16",
            K::MatMul,
            "activations rounded to bf16 while declaring f32",
            Plant::Inputs(|_, t| {
                round_values(&mut t[0], DType::Bf16);
            }),
        ),
        mutant(
            "matmul-activations-f16",
            K::MatMul,
            "activations rounded to f16 while declaring f32",
            Plant::Inputs(|_, t| {
                round_values(&mut t[0], DType::F16);
            }),
        ),
        mutant(
            "matmul-f16-accumulation",
            K::MatMul,
            "partial sums accumulated in f16",
            Plant::Kernel(Kernel::F16Accumulation),
        ),
        mutant(
            "matmul-drops-last-k",
            K::MatMul,
            "the last element of K left out of every dot product",
            Plant::Inputs(|_, t| {
                let k = t[0].desc.shape[1];
                map_values(&mut t[0], |i, v| if i % k == k - 1 { 0.0 } else { v });
            }),
        ),
    ]
}

/// Matrix products: quantized weight blocks dropped or decoded wrongly.
fn mat_mul_weights() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "matmul-drops-last-q4-block",
            K::MatMul,
            "the last Q4_0 block of every weight row left out",
            Plant::Inputs(|_, t| {
                let w = &mut t[1];
                if w.desc.dtype == DType::Q4_0 {
                    let blocks = w.desc.shape[1] / QUANT_BLOCK;
                    let stride = w.desc.strides[0] / QUANT_BLOCK;
                    for (b, block) in w.data.chunks_exact_mut(18).enumerate() {
                        if b % stride == blocks - 1 {
                            block[..2].fill(0);
                        }
                    }
                }
            }),
        ),
        mutant(
            "matmul-q4-nibbles-swapped",
            K::MatMul,
            "Q4_0 low and high nibbles in the wrong order",
            Plant::Inputs(|_, t| {
                swap_nibbles(&mut t[1]);
            }),
        ),
        mutant(
            "matmul-q8-scale-as-bf16",
            K::MatMul,
            "the Q8_0 block scale's bits read as bf16 instead of f16",
            Plant::Inputs(|_, t| {
                if t[1].desc.dtype == DType::Q8_0 {
                    for block in t[1].data.chunks_exact_mut(34) {
                        let bits = u16::from_le_bytes([block[0], block[1]]);
                        let misread = f16::from_f32(bf16::from_bits(bits).to_f32());
                        block[..2].copy_from_slice(&misread.to_le_bytes());
                    }
                }
            }),
        ),
    ]
}

/// Matrix products: unwritten rows, no bias, activation quantization, strides, determinism.
fn mat_mul_execution() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "matmul-last-row-unwritten",
            K::MatMul,
            "the last row of the batch left unwritten",
            Plant::Output(|_, _, before, after| {
                let rows = after.desc.shape[0];
                let n = after.desc.shape[1];
                let (old, mut new) = (before.to_f32(), after.to_f32());
                new[(rows - 1) * n..].copy_from_slice(&old[(rows - 1) * n..]);
                let _ = after.write_f32(&new);
            }),
        ),
        mutant(
            "matmul-bias-dropped",
            K::MatMul,
            "the bias not added",
            Plant::Params(|op| match op {
                Op::MatMul { .. } => Op::MatMul { bias: false },
                other => other.clone(),
            }),
        ),
        mutant(
            "matmul-5-bit-activations",
            K::MatMul,
            "activations of quantized products in blocks of 15 levels while declaring int8",
            Plant::Inputs(|_, t| {
                if t[1].desc.dtype.is_quantized() {
                    quantize_blocks(&mut t[0], 15.0);
                }
            }),
        ),
        Mutant {
            declares: Some(|p| p.with_activations(ActivationQuant::AsStored)),
            ..mutant(
                "matmul-int8-undeclared",
                K::MatMul,
                "activations quantized to int8 blocks while declaring them used as stored",
                Plant::Inputs(|_, t| {
                    if t[1].desc.dtype.is_quantized() {
                        quantize_blocks(&mut t[0], 127.0);
                    }
                }),
            )
        },
        mutant(
            "matmul-ignores-row-stride",
            K::MatMul,
            "activation rows read as packed when they are a slice of a wider tensor",
            Plant::Kernel(Kernel::IgnoresRowStride),
        ),
        mutant(
            "matmul-nondeterministic",
            K::MatMul,
            "one element differs between two runs of the same inputs",
            Plant::Nondeterministic,
        ),
    ]
}

/// Batched matrix products.
fn batched_mat_mul() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "bmm-batch-stride-zero",
            K::BatchedMatMul,
            "every batch multiplies the first batch's right operand",
            Plant::Inputs(|_, t| {
                let b = &mut t[1];
                let per = b.desc.shape[1] * b.desc.shape[2];
                let mut v = b.to_f32();
                let first = v[..per].to_vec();
                for chunk in v.chunks_exact_mut(per) {
                    chunk.copy_from_slice(&first);
                }
                let _ = b.write_f32(&v);
            }),
        ),
        mutant(
            "bmm-f16-accumulation",
            K::BatchedMatMul,
            "partial sums accumulated in f16",
            Plant::Kernel(Kernel::F16Accumulation),
        ),
    ]
}

/// Norms: RMS and layer norm.
fn norms() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "rms-norm-eps-x10",
            K::RmsNorm,
            "epsilon ten times too large",
            Plant::Params(|op| match op {
                Op::RmsNorm { eps } => Op::RmsNorm { eps: eps * 10.0 },
                other => other.clone(),
            }),
        ),
        mutant(
            "rms-norm-mean-not-mean-square",
            K::RmsNorm,
            "the square of the mean instead of the mean of squares",
            Plant::Kernel(Kernel::Norm(NormBug::MeanInsteadOfMeanSquare)),
        ),
        mutant(
            "rms-norm-no-cast-back",
            K::RmsNorm,
            "the normalized value not rounded to the activation dtype before the weight",
            Plant::Kernel(Kernel::Norm(NormBug::NoCastBack)),
        ),
        mutant(
            "rms-norm-weight-plus-one",
            K::RmsNorm,
            "(1 + w) as the weight, another family's convention",
            Plant::Kernel(Kernel::Norm(NormBug::WeightPlusOne)),
        ),
        mutant(
            "layer-norm-mean-not-subtracted",
            K::LayerNorm,
            "the variance taken without subtracting the mean",
            Plant::Kernel(Kernel::Norm(NormBug::NoMeanSubtraction)),
        ),
        mutant(
            "layer-norm-bias-dropped",
            K::LayerNorm,
            "the bias not added",
            Plant::Kernel(Kernel::Norm(NormBug::BiasDropped)),
        ),
    ]
}

/// Rotary embedding.
fn rope() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "rope-modes-swapped",
            K::Rope,
            "half-split (NeoX) and interleaved pairs swapped",
            Plant::Params(|op| match op {
                Op::Rope { rot, theta, mode } => Op::Rope {
                    rot: *rot,
                    theta: *theta,
                    mode: match mode {
                        glmhal_hal::RopeMode::Interleaved => glmhal_hal::RopeMode::Neox,
                        glmhal_hal::RopeMode::Neox => glmhal_hal::RopeMode::Interleaved,
                    },
                },
                other => other.clone(),
            }),
        ),
        mutant(
            "rope-position-off-by-one-past-1024",
            K::Rope,
            "positions past 1024 rotated one step too far",
            Plant::Inputs(|_, t| {
                map_i32(&mut t[1], |p| if p > 1024 { p + 1 } else { p });
            }),
        ),
        mutant(
            "rope-theta-as-f16",
            K::Rope,
            "theta read as f16",
            Plant::Params(|op| match op {
                Op::Rope { rot, theta, mode } => Op::Rope {
                    rot: *rot,
                    theta: f16::from_f64(*theta).to_f64(),
                    mode: *mode,
                },
                other => other.clone(),
            }),
        ),
        mutant(
            "rope-half-the-dims",
            K::Rope,
            "only half of the rotary dims rotated",
            Plant::Params(|op| match op {
                Op::Rope { rot, theta, mode } if *rot >= 4 => Op::Rope {
                    rot: rot / 2 / 2 * 2,
                    theta: *theta,
                    mode: *mode,
                },
                other => other.clone(),
            }),
        ),
        mutant(
            "rope-angles-in-f16",
            K::Rope,
            "angles computed in f16",
            Plant::Kernel(Kernel::RopeF16Angles),
        ),
    ]
}

/// Attention and softmax.
fn attention() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "attention-drops-last-key",
            K::Attention,
            "the newest visible key left out",
            Plant::Kernel(Kernel::Attention(AttentionBug::DropsLastKey)),
        ),
        mutant(
            "attention-causal-off-by-one",
            K::Attention,
            "each query also sees the next key",
            Plant::Kernel(Kernel::Attention(AttentionBug::CausalOffByOne)),
        ),
        mutant(
            "attention-gqa-modulo",
            K::Attention,
            "query head h reads KV head h % n_kv instead of h / group",
            Plant::Kernel(Kernel::Attention(AttentionBug::GqaModulo)),
        ),
        mutant(
            "attention-no-max-subtraction",
            K::Attention,
            "softmax without subtracting the maximum score",
            Plant::Kernel(Kernel::Attention(AttentionBug::NoMaxSubtraction)),
        ),
        mutant(
            "attention-scale-as-f16",
            K::Attention,
            "the score scale rounded to f16",
            Plant::Kernel(Kernel::Attention(AttentionBug::ScaleAsF16)),
        ),
        mutant(
            "attention-duplicates-first-key",
            K::Attention,
            "the first key counted twice",
            Plant::Kernel(Kernel::Attention(AttentionBug::DuplicatesFirstKey)),
        ),
        mutant(
            "attention-drops-far-key-at-long-context",
            K::Attention,
            "key 0 left out once the context passes 2048 positions",
            Plant::Kernel(Kernel::Attention(AttentionBug::DropsFarKeyAtLongContext)),
        ),
        mutant(
            "softmax-no-max-subtraction",
            K::Softmax,
            "exp without subtracting the row maximum",
            Plant::Kernel(Kernel::Softmax(SoftmaxBug::NoMaxSubtraction)),
        ),
        mutant(
            "softmax-causal-off-by-one",
            K::Softmax,
            "each row also sees the next column",
            Plant::Kernel(Kernel::Softmax(SoftmaxBug::CausalOffByOne)),
        ),
        mutant(
            "softmax-f16-denominator",
            K::Softmax,
            "the denominator accumulated in f16",
            Plant::Kernel(Kernel::Softmax(SoftmaxBug::F16Denominator)),
        ),
    ]
}

/// Activations and elementwise ops.
fn pointwise() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "silu-fast-exp",
            K::Silu,
            "exp approximated by (1 + x/256)^256",
            Plant::Kernel(Kernel::Pointwise(PointwiseBug::SiluFastExp)),
        ),
        mutant(
            "gelu-erf-not-tanh",
            K::Gelu,
            "erf GELU instead of the tanh approximation",
            Plant::Kernel(Kernel::Pointwise(PointwiseBug::GeluErf)),
        ),
        mutant(
            "gelu-coefficient-typo",
            K::Gelu,
            "cubic coefficient 0.0447 instead of 0.044715",
            Plant::Kernel(Kernel::Pointwise(PointwiseBug::GeluCoefficientTypo)),
        ),
        mutant(
            "swiglu-halves-swapped",
            K::SwiGlu,
            "the up half taken as the gate",
            Plant::Kernel(Kernel::Pointwise(PointwiseBug::SwiGluHalvesSwapped)),
        ),
        mutant(
            "swiglu-writes-past-output",
            K::SwiGlu,
            "one byte written past the output",
            Plant::SpillPast,
        ),
        mutant(
            "add-truncates",
            K::Add,
            "rounds toward zero into the output dtype",
            Plant::Kernel(Kernel::Pointwise(PointwiseBug::AddTruncates)),
        ),
        mutant(
            "mul-f16-intermediate",
            K::Mul,
            "the product rounded to f16 before the output",
            Plant::Kernel(Kernel::Pointwise(PointwiseBug::MulF16Intermediate)),
        ),
        mutant(
            "mul-stale-result",
            K::Mul,
            "returns the previous call's output",
            Plant::Stale,
        ),
        mutant(
            "scale-factor-as-f16",
            K::Scale,
            "the factor rounded to f16",
            Plant::Params(|op| match op {
                Op::Scale { factor } => Op::Scale {
                    factor: f16::from_f64(*factor).to_f64(),
                },
                other => other.clone(),
            }),
        ),
    ]
}

/// Conversions, quantization and the KV cache write.
fn conversions_and_cache() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "cast-truncates",
            K::Cast,
            "f32 to f16/bf16 rounding toward zero",
            Plant::Kernel(Kernel::Cast(CastBug::Truncates)),
        ),
        mutant(
            "cast-flushes-subnormals",
            K::Cast,
            "f16 subnormal results flushed to zero",
            Plant::Kernel(Kernel::Cast(CastBug::FlushesSubnormals)),
        ),
        mutant(
            "quantize-q4-nibbles-swapped",
            K::Quantize,
            "Q4_0 nibbles written in the wrong order",
            Plant::Output(|_, _, _, after| {
                swap_nibbles(after);
            }),
        ),
        mutant(
            "quantize-q8-truncates",
            K::Quantize,
            "Q8_0 values truncated instead of rounded",
            Plant::Kernel(Kernel::QuantizeQ8Truncating),
        ),
        mutant(
            "kv-write-one-slot-off-in-a-used-cache",
            K::KvWrite,
            "rows written one slot early when the cache already holds rows",
            Plant::Inputs(|_, t| {
                let positions = t[1].to_i32().unwrap_or_default();
                if positions.iter().all(|p| *p > 0) {
                    map_i32(&mut t[1], |p| p - 1);
                }
            }),
        ),
        mutant(
            "kv-write-drops-last-row",
            K::KvWrite,
            "the last new row not written",
            Plant::Output(|_, t, before, after| {
                let positions = t[1].to_i32().unwrap_or_default();
                let Some(last) = positions.last() else { return };
                let row = after.desc.shape[1] * after.desc.shape[2];
                let (old, mut new) = (before.to_f32(), after.to_f32());
                let at = *last as usize * row;
                new[at..at + row].copy_from_slice(&old[at..at + row]);
                let _ = after.write_f32(&new);
            }),
        ),
    ]
}

/// Reductions.
fn reductions() -> Vec<Mutant> {
    use OpKind as K;
    vec![
        mutant(
            "argmax-last-on-ties",
            K::Argmax,
            "the last of equal maxima",
            Plant::Kernel(Kernel::Argmax(ArgmaxBug::LastOnTies)),
        ),
        mutant(
            "argmax-skips-last-column",
            K::Argmax,
            "the loop stops one column short",
            Plant::Kernel(Kernel::Argmax(ArgmaxBug::SkipsLastColumn)),
        ),
    ]
}

/// Rewrites every value of a float view.
fn map_values(t: &mut HostTensor, f: impl Fn(usize, f32) -> f32) {
    if !t.desc.dtype.is_float() {
        return;
    }
    let v: Vec<f32> = t
        .to_f32()
        .into_iter()
        .enumerate()
        .map(|(i, x)| f(i, x))
        .collect();
    let _ = t.write_f32(&v);
}

/// Rounds every value of a float view through `dtype`.
pub(super) fn round_values(t: &mut HostTensor, dtype: DType) {
    map_values(t, |_, v| round_to(dtype, v));
}

/// Rewrites every value of an i32 view.
pub(super) fn map_i32(t: &mut HostTensor, f: impl Fn(i32) -> i32) {
    let Ok(v) = t.to_i32() else { return };
    let mapped: Vec<f32> = v.into_iter().map(|x| f(x) as f32).collect();
    let _ = t.write_f32(&mapped);
}

/// Quantizes a float view's rows to blocks of 32 with `levels` steps each side.
fn quantize_blocks(t: &mut HostTensor, levels: f32) {
    let k = t.desc.last_dim();
    if !k.is_multiple_of(QUANT_BLOCK) {
        return;
    }
    let v: Vec<f32> = t
        .to_f32()
        .chunks_exact(QUANT_BLOCK)
        .flat_map(|b| {
            let d = b.iter().fold(0.0f32, |m, x| m.max(x.abs())) / levels;
            b.iter()
                .map(move |x| if d == 0.0 { 0.0 } else { (x / d).round() * d })
        })
        .collect();
    let _ = t.write_f32(&v);
}

/// Swaps the two nibbles of every Q4_0 byte (scales untouched).
fn swap_nibbles(t: &mut HostTensor) {
    if t.desc.dtype != DType::Q4_0 {
        return;
    }
    for block in t.data.chunks_exact_mut(18) {
        for b in &mut block[2..] {
            *b = b.rotate_left(4);
        }
    }
}
