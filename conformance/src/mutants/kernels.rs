//! Host versions of ops with a bug planted, for the mutants that replace a
//! kernel: plain loops over logical values, the bug where a real kernel
//! has had it, the result stored through the output's view.

use glmhal_hal::{quant::round_to, DType, HostTensor, Op, Result};
use half::{bf16, f16};

/// A host kernel with a planted bug, run in place of the backend's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// A product with every partial sum rounded to f16.
    F16Accumulation,
    /// A product reading strided activation rows as packed.
    IgnoresRowStride,
    /// A norm with a fault.
    Norm(NormBug),
    /// rope with its angles in f16.
    RopeF16Angles,
    /// Attention with a fault.
    Attention(AttentionBug),
    /// Softmax with a fault.
    Softmax(SoftmaxBug),
    /// An elementwise op with a fault.
    Pointwise(PointwiseBug),
    /// A conversion with a fault.
    Cast(CastBug),
    /// Q8_0 quantization truncating instead of rounding.
    QuantizeQ8Truncating,
    /// argmax with a fault.
    Argmax(ArgmaxBug),
    /// moe_select giving equal scores to the higher index.
    MoeSelectLastOnTies,
}

impl Kernel {
    /// Computes `op` on `inputs` into `out` (a host copy of the output view), bug and all.
    pub fn run(self, op: &Op, inputs: &[HostTensor], out: &mut HostTensor) -> Result<()> {
        match self {
            Kernel::F16Accumulation => f16_accumulation(inputs, out, op),
            Kernel::IgnoresRowStride => matmul_ignoring_row_stride(inputs, out, op),
            Kernel::Norm(bug) => norm(inputs, out, op, bug),
            Kernel::RopeF16Angles => rope_f16_angles(inputs, out, op),
            Kernel::Attention(bug) => attention(inputs, out, op, bug),
            Kernel::Softmax(bug) => softmax(inputs, out, op, bug),
            Kernel::Pointwise(bug) => pointwise(inputs, out, bug),
            Kernel::Cast(bug) => cast(inputs, out, bug),
            Kernel::QuantizeQ8Truncating => quantize_q8_truncating(inputs, out),
            Kernel::Argmax(bug) => argmax(inputs, out, bug),
            Kernel::MoeSelectLastOnTies => super::experts::select_last_on_ties(inputs, out, op),
        }
    }
}

/// Attention with one planted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionBug {
    /// The newest visible key is left out.
    DropsLastKey,
    /// Each query also sees the key after its own position.
    CausalOffByOne,
    /// Query head `h` reads KV head `h % n_kv` instead of `h / group`.
    GqaModulo,
    /// `exp(s)` without subtracting the row maximum first (in f32).
    NoMaxSubtraction,
    /// The scale rounded to f16.
    ScaleAsF16,
    /// The first key counted twice.
    DuplicatesFirstKey,
    /// Key 0 is left out once the context passes 2048 positions.
    DropsFarKeyAtLongContext,
}

fn attention(
    inputs: &[HostTensor],
    out: &mut HostTensor,
    op: &Op,
    bug: AttentionBug,
) -> Result<()> {
    let Op::Attention { scale, causal } = op else {
        return Ok(());
    };
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (t, nh, d) = (q.desc.shape[0], q.desc.shape[1], q.desc.shape[2]);
    let (s, nkv) = (k.desc.shape[0], k.desc.shape[1]);
    let group = nh / nkv;
    let (qs, ks, vs) = (q.to_f64(), k.to_f64(), v.to_f64());
    let scale = if bug == AttentionBug::ScaleAsF16 {
        f16::from_f64(*scale).to_f64()
    } else {
        *scale
    };
    let mut result = vec![0.0f32; t * nh * d];
    for ti in 0..t {
        let own = s - t + ti + 1;
        let mut visible = if *causal { own } else { s };
        if bug == AttentionBug::CausalOffByOne && *causal {
            visible = (own + 1).min(s);
        }
        for h in 0..nh {
            let g = if bug == AttentionBug::GqaModulo {
                h % nkv
            } else {
                h / group
            };
            let qh = &qs[(ti * nh + h) * d..(ti * nh + h + 1) * d];
            let mut keys: Vec<usize> = (0..visible).collect();
            match bug {
                AttentionBug::DropsLastKey if visible > 1 => {
                    keys.pop();
                }
                AttentionBug::DuplicatesFirstKey => keys.push(0),
                AttentionBug::DropsFarKeyAtLongContext if s > 2048 => {
                    keys.remove(0);
                }
                _ => {}
            }
            let scores: Vec<f64> = keys
                .iter()
                .map(|&j| {
                    let kh = &ks[(j * nkv + g) * d..(j * nkv + g + 1) * d];
                    qh.iter().zip(kh).map(|(a, b)| a * scale * b).sum()
                })
                .collect();
            let weights: Vec<f64> = if bug == AttentionBug::NoMaxSubtraction {
                scores.iter().map(|x| (*x as f32).exp() as f64).collect()
            } else {
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                scores.iter().map(|x| (x - max).exp()).collect()
            };
            let z: f64 = weights.iter().sum();
            let o = &mut result[(ti * nh + h) * d..(ti * nh + h + 1) * d];
            for (w, &j) in weights.iter().zip(&keys) {
                let vh = &vs[(j * nkv + g) * d..(j * nkv + g + 1) * d];
                for (oi, vi) in o.iter_mut().zip(vh) {
                    *oi += (w / z * vi) as f32;
                }
            }
        }
    }
    out.write_f32(&result)
}

/// Softmax with one planted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxBug {
    /// `exp(x)` without subtracting the row maximum (in f32).
    NoMaxSubtraction,
    /// Row `i` also sees the column after its last visible one.
    CausalOffByOne,
    /// The denominator accumulated in f16.
    F16Denominator,
}

fn softmax(inputs: &[HostTensor], out: &mut HostTensor, op: &Op, bug: SoftmaxBug) -> Result<()> {
    let Op::Softmax { scale, causal } = op else {
        return Ok(());
    };
    let x = &inputs[0];
    let (m, n) = (x.desc.shape[0], x.desc.shape[1]);
    let xs = x.to_f64();
    let mut result = vec![0.0f32; m * n];
    for i in 0..m {
        let mut visible = if *causal { i + n - m + 1 } else { n };
        if bug == SoftmaxBug::CausalOffByOne && *causal {
            visible = (visible + 1).min(n);
        }
        let row: Vec<f64> = xs[i * n..i * n + visible]
            .iter()
            .map(|v| v * scale)
            .collect();
        let e: Vec<f64> = if bug == SoftmaxBug::NoMaxSubtraction {
            row.iter().map(|v| (*v as f32).exp() as f64).collect()
        } else {
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            row.iter().map(|v| (v - max).exp()).collect()
        };
        let z = if bug == SoftmaxBug::F16Denominator {
            e.iter()
                .fold(f16::ZERO, |acc, v| f16::from_f64(acc.to_f64() + v))
                .to_f64()
        } else {
            e.iter().sum()
        };
        for (j, v) in e.iter().enumerate() {
            result[i * n + j] = (v / z) as f32;
        }
    }
    out.write_f32(&result)
}

/// `x·wᵀ` (or a batched product) with every partial sum rounded to f16.
fn f16_accumulation(inputs: &[HostTensor], out: &mut HostTensor, op: &Op) -> Result<()> {
    let acc = |terms: &mut dyn Iterator<Item = f64>| {
        terms
            .fold(f16::ZERO, |a, t| f16::from_f64(a.to_f64() + t))
            .to_f64()
    };
    let result: Vec<f32> = match op {
        Op::MatMul { .. } => {
            let (x, w) = (&inputs[0], &inputs[1]);
            let (m, k, n) = (x.desc.shape[0], x.desc.shape[1], w.desc.shape[0]);
            let (xs, ws) = (x.to_f64(), w.to_f64());
            let bias = inputs.get(2).map(|b| b.to_f64());
            let mut r = Vec::with_capacity(m * n);
            for i in 0..m {
                for j in 0..n {
                    let mut terms = (0..k).map(|p| xs[i * k + p] * ws[j * k + p]);
                    let b = bias.as_ref().map_or(0.0, |b| b[j]);
                    r.push((acc(&mut terms) + b) as f32);
                }
            }
            r
        }
        Op::BatchedMatMul => {
            let (a, b) = (&inputs[0], &inputs[1]);
            let (batch, m, k) = (a.desc.shape[0], a.desc.shape[1], a.desc.shape[2]);
            let n = b.desc.shape[2];
            let (av, bv) = (a.to_f64(), b.to_f64());
            let mut r = Vec::with_capacity(batch * m * n);
            for z in 0..batch {
                for i in 0..m {
                    for j in 0..n {
                        let mut terms =
                            (0..k).map(|p| av[(z * m + i) * k + p] * bv[(z * k + p) * n + j]);
                        r.push(acc(&mut terms) as f32);
                    }
                }
            }
            r
        }
        _ => return Ok(()),
    };
    out.write_f32(&result)
}

/// A product that reads the activations' storage as if their rows were
/// packed (ignoring the row stride of a slice of a wider tensor).
fn matmul_ignoring_row_stride(inputs: &[HostTensor], out: &mut HostTensor, op: &Op) -> Result<()> {
    let mut x = inputs[0].clone();
    let shape = x.desc.shape.to_vec();
    let packed = glmhal_hal::TensorDesc::strided(
        x.desc.dtype,
        &shape,
        &glmhal_hal::contiguous_strides(&shape),
        x.desc.offset,
    );
    if packed.validate(x.data.len()).is_err() {
        return Ok(());
    }
    x.desc = packed;
    let mut ins = inputs.to_vec();
    ins[0] = x;
    glmhal_ops::reference::execute(op, &ins, std::slice::from_mut(out))
}

/// rms_norm with one planted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormBug {
    /// The square of the mean instead of the mean of squares.
    MeanInsteadOfMeanSquare,
    /// The normalized value is not rounded to the activation dtype before the weight.
    NoCastBack,
    /// `(1 + w)` as the weight (another model family's convention).
    WeightPlusOne,
    /// layer_norm: the variance as the mean square, without the mean subtracted.
    NoMeanSubtraction,
    /// layer_norm: the bias left out.
    BiasDropped,
}

fn norm(inputs: &[HostTensor], out: &mut HostTensor, op: &Op, bug: NormBug) -> Result<()> {
    let x = &inputs[0];
    let h = x.desc.last_dim();
    let (xs, ws) = (x.to_f64(), inputs[1].to_f64());
    let mut result = Vec::with_capacity(xs.len());
    match op {
        Op::RmsNorm { eps } => {
            for row in xs.chunks_exact(h) {
                let ms = match bug {
                    NormBug::MeanInsteadOfMeanSquare => {
                        (row.iter().sum::<f64>() / h as f64).powi(2)
                    }
                    _ => row.iter().map(|v| v * v).sum::<f64>() / h as f64,
                };
                let r = 1.0 / (ms + eps).sqrt();
                for (v, g) in row.iter().zip(&ws) {
                    let n = if bug == NormBug::NoCastBack {
                        v * r
                    } else {
                        round_to(x.desc.dtype, (v * r) as f32) as f64
                    };
                    let g = if bug == NormBug::WeightPlusOne {
                        1.0 + g
                    } else {
                        *g
                    };
                    result.push((n * g) as f32);
                }
            }
        }
        Op::LayerNorm { eps } => {
            let bs = inputs[2].to_f64();
            for row in xs.chunks_exact(h) {
                let mean = if bug == NormBug::NoMeanSubtraction {
                    0.0
                } else {
                    row.iter().sum::<f64>() / h as f64
                };
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / h as f64;
                let r = 1.0 / (var + eps).sqrt();
                for i in 0..h {
                    let b = if bug == NormBug::BiasDropped {
                        0.0
                    } else {
                        bs[i]
                    };
                    result.push(((row[i] - mean) * r * ws[i] + b) as f32);
                }
            }
        }
        _ => return Ok(()),
    }
    out.write_f32(&result)
}

/// rope with its angles computed and rounded in f16.
fn rope_f16_angles(inputs: &[HostTensor], out: &mut HostTensor, op: &Op) -> Result<()> {
    let Op::Rope { rot, theta, mode } = op else {
        return Ok(());
    };
    let x = &inputs[0];
    let positions = inputs[1].to_i32()?;
    let (t, heads, d) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2]);
    let mut v = x.to_f64();
    for ti in 0..t {
        for h in 0..heads {
            let head = &mut v[(ti * heads + h) * d..(ti * heads + h + 1) * d];
            for i in 0..rot / 2 {
                let f = theta.powf(-2.0 * i as f64 / *rot as f64);
                let angle = f16::from_f64(positions[ti] as f64 * f).to_f64();
                let (s, c) = angle.sin_cos();
                let (a, b) = mode.pair(i, *rot);
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x1 * c + x0 * s;
            }
        }
    }
    let as_f32: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    out.write_f32(&as_f32)
}

/// An elementwise op with one planted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointwiseBug {
    /// silu through `exp(x) ≈ (1 + x/256)^256`.
    SiluFastExp,
    /// gelu through erf instead of GLM's tanh approximation.
    GeluErf,
    /// gelu with the cubic coefficient written 0.0447.
    GeluCoefficientTypo,
    /// swi_glu taking the up half as the gate.
    SwiGluHalvesSwapped,
    /// add rounding toward zero into the output dtype.
    AddTruncates,
    /// mul rounding the product to f16 before the output.
    MulF16Intermediate,
}

fn pointwise(inputs: &[HostTensor], out: &mut HostTensor, bug: PointwiseBug) -> Result<()> {
    let silu = |x: f64| x / (1.0 + (-x).exp());
    let result: Vec<f32> = match bug {
        PointwiseBug::SiluFastExp => inputs[0]
            .to_f64()
            .into_iter()
            .map(|x| (x / (1.0 + (1.0 - x / 256.0).powi(256))) as f32)
            .collect(),
        PointwiseBug::GeluErf | PointwiseBug::GeluCoefficientTypo => inputs[0]
            .to_f64()
            .into_iter()
            .map(|x| {
                let y = if bug == PointwiseBug::GeluErf {
                    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
                } else {
                    let c = (2.0 / std::f64::consts::PI).sqrt();
                    0.5 * x * (1.0 + (c * (x + 0.0447 * x * x * x)).tanh())
                };
                y as f32
            })
            .collect(),
        PointwiseBug::SwiGluHalvesSwapped => {
            let two_f = inputs[0].desc.last_dim();
            let f = two_f / 2;
            inputs[0]
                .to_f64()
                .chunks_exact(two_f)
                .flat_map(|row| (0..f).map(move |i| (silu(row[f + i]) * row[i]) as f32))
                .collect()
        }
        PointwiseBug::AddTruncates => {
            glmhal_ops::reference::values(&Op::Add, inputs, std::slice::from_ref(out))?
                .iter()
                .map(|v| toward_zero(out.desc.dtype, *v))
                .collect()
        }
        PointwiseBug::MulF16Intermediate => {
            glmhal_ops::reference::values(&Op::Mul, inputs, std::slice::from_ref(out))?
                .iter()
                .map(|v| f16::from_f64(*v).to_f32())
                .collect()
        }
    };
    out.write_f32(&result)
}

/// `v` rounded toward zero into `dtype` (the result is representable, so
/// storing it is exact).
fn toward_zero(dtype: DType, v: f64) -> f32 {
    let f = v as f32;
    let f = if (f as f64).abs() > v.abs() {
        f32::from_bits(f.to_bits() - 1)
    } else {
        f
    };
    match dtype {
        DType::F16 => {
            let h = f16::from_f32(f);
            let h = if h.to_f32().abs() > f.abs() {
                f16::from_bits(h.to_bits() - 1)
            } else {
                h
            };
            h.to_f32()
        }
        DType::Bf16 => bf16::from_bits((f.to_bits() >> 16) as u16).to_f32(),
        _ => f,
    }
}

/// Abramowitz and Stegun 7.1.26 (error below 1.5e-7), enough to tell erf-GELU from tanh-GELU.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

/// argmax with one planted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgmaxBug {
    /// The last index of equal maxima.
    LastOnTies,
    /// The last column never looked at.
    SkipsLastColumn,
}

fn argmax(inputs: &[HostTensor], out: &mut HostTensor, bug: ArgmaxBug) -> Result<()> {
    let x = &inputs[0];
    let n = x.desc.shape[1];
    let result: Vec<f32> = x
        .to_f64()
        .chunks_exact(n)
        .map(|row| {
            let seen = if bug == ArgmaxBug::SkipsLastColumn && n > 1 {
                n - 1
            } else {
                n
            };
            let mut best = 0;
            for (j, v) in row[..seen].iter().enumerate() {
                if *v > row[best] || (bug == ArgmaxBug::LastOnTies && *v == row[best]) {
                    best = j;
                }
            }
            best as f32
        })
        .collect();
    out.write_f32(&result)
}

/// f32 → f16/bf16 conversion with a planted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastBug {
    /// Round toward zero.
    Truncates,
    /// f16 subnormal results flushed to zero.
    FlushesSubnormals,
}

fn cast(inputs: &[HostTensor], out: &mut HostTensor, bug: CastBug) -> Result<()> {
    let dtype = out.desc.dtype;
    let result: Vec<f32> = inputs[0]
        .to_f64()
        .into_iter()
        .map(|v| match bug {
            CastBug::Truncates => toward_zero(dtype, v),
            CastBug::FlushesSubnormals => {
                let r = round_to(dtype, v as f32);
                if dtype == DType::F16 && r != 0.0 && r.abs() < 6.103_515_6e-5 {
                    0.0
                } else {
                    r
                }
            }
        })
        .collect();
    out.write_f32(&result)
}

/// Q8_0 quantization truncating `x/d` instead of rounding it.
fn quantize_q8_truncating(inputs: &[HostTensor], out: &mut HostTensor) -> Result<()> {
    if out.desc.dtype != DType::Q8_0 {
        return glmhal_ops::reference::execute(&Op::Quantize, inputs, std::slice::from_mut(out));
    }
    let k = inputs[0].desc.last_dim();
    let values = inputs[0].to_f32();
    for (r, row) in values.chunks_exact(k).enumerate() {
        let mut bytes = Vec::with_capacity(DType::Q8_0.bytes_for(k));
        for block in row.chunks_exact(glmhal_hal::QUANT_BLOCK) {
            let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            bytes.extend_from_slice(&f16::from_f32(d).to_le_bytes());
            bytes.extend(
                block
                    .iter()
                    .map(|v| ((v * id).trunc() as i32).clamp(-128, 127) as i8 as u8),
            );
        }
        out.write_row_bytes(r, &bytes)?;
    }
    Ok(())
}
