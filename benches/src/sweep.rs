//! Op sweeps at GLM's real shapes: the projections of a preset at decode (one
//! row) and prefill, decode attention over growing contexts, and the norms,
//! rope and swiglu of a prefill.

use glmhal_hal::{quant, Backend, Buffer, DType, Op, Result, Rng, RopeMode, TensorDesc};
use glmhal_model::synth::Preset;

use crate::measure::{measure, Budget};
use crate::schema::OpMeasurement;

/// The shapes `glmhal ci` measures by default: big enough to time reliably,
/// small enough to run on every commit (a GLM-4-shaped 1024-wide model).
pub const CI_PRESET: Preset = Preset {
    name: "ci",
    order: glmhal_model::LayerOrder::Glm4,
    hidden: 1024,
    layers: 2,
    heads: 8,
    kv_heads: 2,
    head_dim: 128,
    ffn: 2816,
    vocab: 8192,
    theta: 10000.0,
    eps: 1e-5,
    context: 2048,
    moe: None,
};

/// A preset by name: [`CI_PRESET`] or one of the model presets.
pub fn preset(name: &str) -> Result<Preset> {
    if name == CI_PRESET.name {
        return Ok(CI_PRESET);
    }
    glmhal_model::synth::find_preset(name).cloned()
}

/// What to sweep.
#[derive(Clone, Debug)]
pub struct SweepPlan {
    /// Name in labels (the preset's or the model directory's).
    pub name: String,
    /// Shapes come from this preset.
    pub preset: Preset,
    /// Weight dtype of the projections.
    pub weights: DType,
    /// Rows of the prefill shapes.
    pub prefill_tokens: usize,
    /// Cache lengths of decode attention (capped at the preset's context).
    pub contexts: Vec<usize>,
    /// Timing budget per shape.
    pub budget: Budget,
}

/// One op and its tensors, ready to measure.
struct Job {
    op: Op,
    label: String,
    inputs: Vec<TensorDesc>,
    output: TensorDesc,
    flops: f64,
    bytes: f64,
}

impl SweepPlan {
    fn jobs(&self) -> Vec<Job> {
        let p = &self.preset;
        let f32 = |s: &[usize]| TensorDesc::contiguous(DType::F32, s);
        let mut jobs = Vec::new();
        let q_dim = p.heads * p.head_dim;
        let qkv = (p.heads + 2 * p.kv_heads) * p.head_dim;
        let projections = [
            ("qkv", qkv, p.hidden),
            ("o", p.hidden, q_dim),
            ("gate_up", 2 * p.ffn, p.hidden),
            ("down", p.hidden, p.ffn),
            ("lm_head", p.vocab, p.hidden),
        ];
        for (phase, rows) in [("decode", 1), ("prefill", self.prefill_tokens)] {
            for (name, n, k) in projections {
                // The prefill keeps only the last row's logits, so lm_head runs at decode size.
                if name == "lm_head" && phase == "prefill" {
                    continue;
                }
                jobs.push(Job {
                    op: Op::MatMul { bias: false },
                    label: format!("{} {name} {phase} {}", self.name, self.weights),
                    inputs: vec![
                        f32(&[rows, k]),
                        TensorDesc::contiguous(self.weights, &[n, k]),
                    ],
                    output: f32(&[rows, n]),
                    flops: 2.0 * (rows * n * k) as f64,
                    bytes: (self.weights.bytes_for(n * k) + 4 * rows * (k + n)) as f64,
                });
            }
        }
        for &ctx in self.contexts.iter().filter(|c| **c <= p.context) {
            let kv = f32(&[ctx, p.kv_heads, p.head_dim]);
            jobs.push(Job {
                op: Op::Attention {
                    scale: (p.head_dim as f64).powf(-0.5),
                    causal: true,
                },
                label: format!("{} decode ctx {ctx}", self.name),
                inputs: vec![f32(&[1, p.heads, p.head_dim]), kv.clone(), kv],
                output: f32(&[1, p.heads, p.head_dim]),
                flops: 4.0 * (p.heads * ctx * p.head_dim) as f64,
                bytes: (8 * ctx * p.kv_heads * p.head_dim + 8 * q_dim) as f64,
            });
        }
        let t = self.prefill_tokens;
        jobs.push(Job {
            op: Op::RmsNorm { eps: p.eps },
            label: format!("{} prefill", self.name),
            inputs: vec![f32(&[t, p.hidden]), f32(&[p.hidden])],
            output: f32(&[t, p.hidden]),
            flops: 4.0 * (t * p.hidden) as f64,
            bytes: (8 * t * p.hidden + 4 * p.hidden) as f64,
        });
        jobs.push(Job {
            op: Op::Rope {
                rot: p.head_dim / 2,
                theta: p.theta,
                mode: RopeMode::Interleaved,
            },
            label: format!("{} prefill q", self.name),
            inputs: vec![
                f32(&[t, p.heads, p.head_dim]),
                TensorDesc::contiguous(DType::I32, &[t]),
            ],
            output: f32(&[t, p.heads, p.head_dim]),
            flops: 6.0 * (t * q_dim) as f64,
            bytes: (8 * t * q_dim + 4 * t) as f64,
        });
        jobs.push(Job {
            op: Op::SwiGlu,
            label: format!("{} prefill", self.name),
            inputs: vec![f32(&[t, 2 * p.ffn])],
            output: f32(&[t, p.ffn]),
            flops: 6.0 * (t * p.ffn) as f64,
            bytes: (12 * t * p.ffn) as f64,
        });
        jobs
    }

    /// Labels of the shapes [`SweepPlan::run`] measures, in order.
    pub fn labels(&self) -> Vec<String> {
        self.jobs()
            .iter()
            .map(|j| format!("{} {}", j.op.name(), j.label))
            .collect()
    }

    /// Measures every shape on `backend`. Shapes it cannot run come back as
    /// reasons, never measured elsewhere. `progress` sees each label.
    pub fn run(
        &self,
        selector: &str,
        backend: &dyn Backend,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(Vec<OpMeasurement>, Vec<String>)> {
        let mut done = Vec::new();
        let mut skipped = Vec::new();
        for (i, job) in self.jobs().into_iter().enumerate() {
            progress(&format!("{} {}", job.op.name(), job.label));
            let support = backend.supports(&job.op, &job.inputs, std::slice::from_ref(&job.output));
            if let glmhal_hal::Support::Unsupported(why) = support {
                skipped.push(format!("{selector} {} {}: {why}", job.op.name(), job.label));
                continue;
            }
            let inputs = job
                .inputs
                .iter()
                .enumerate()
                .map(|(j, d)| filled(backend, d, (i * 8 + j) as u64))
                .collect::<Result<Vec<Buffer>>>()?;
            let output = backend.alloc(job.output.byte_range().end)?;
            let views: Vec<_> = inputs
                .iter()
                .zip(&job.inputs)
                .map(|(b, d)| b.view(d.clone()))
                .collect();
            let out_view = [output.view(job.output.clone())];
            let stats = measure(self.budget, || {
                backend.execute(&job.op, &views, &out_view)?;
                backend.synchronize()
            })?;
            let shapes = job
                .inputs
                .iter()
                .map(TensorDesc::describe)
                .collect::<Vec<_>>()
                .join(", ");
            done.push(OpMeasurement::new(
                selector,
                job.op.name(),
                job.label,
                format!("{shapes} -> {}", job.output.describe()),
                job.flops,
                job.bytes,
                stats,
            ));
        }
        Ok((done, skipped))
    }
}

/// A buffer for `desc`: i32 tensors count up from 0 (positions), floats are
/// seeded values in (-1, 1) in the tensor's dtype.
fn filled(backend: &dyn Backend, desc: &TensorDesc, seed: u64) -> Result<Buffer> {
    let n = desc.numel();
    if desc.dtype == DType::I32 {
        let bytes: Vec<u8> = (0..n as i32).flat_map(|i| i.to_le_bytes()).collect();
        return backend.upload_new(&bytes);
    }
    let mut rng = Rng::new(seed);
    let values: Vec<f32> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
    backend.upload_new(&quant::from_f32(desc.dtype, &values)?)
}
