//! Running the GLM graph on any backend.

use std::alloc::Layout;
use std::mem::ManuallyDrop;
use std::path::Path;
use std::time::Instant;

use glmhal_hal::{Backend, Buffer, DType, HalError, OpCall, Result, TensorRef};

use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::graph::{CacheShape, Graph, Operand, SeqStep, Storage, Want};
use crate::kv_cache::KvCache;
use crate::plan::{Plan, Planner};
use crate::weights::DeviceWeights;

/// Options for [`Model::load`].
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Store projection and embedding matrices in this dtype (as in the checkpoint when `None`).
    pub weights: Option<DType>,
    /// Where loading reports each weight placed on the device.
    pub progress: crate::Progress,
}

/// A model resident on a backend.
pub struct Model {
    /// Its config.
    pub config: ModelConfig,
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) weights: DeviceWeights,
    /// Seconds spent loading.
    pub load_seconds: f64,
}

/// What one run of steps reuses: the activation arena and the i32 inputs on
/// the device, and on the host every list a step builds (graph, memory
/// plan, op list, result bytes), kept for its storage so that once the first
/// steps have sized them a decode step allocates nothing.
#[derive(Default)]
pub struct Workspace {
    pub(crate) arena: Option<Buffer>,
    pub(crate) io: Option<Buffer>,
    /// Largest planned activation peak so far, in bytes.
    pub planned_peak: usize,
    /// What one buffer per activation would have needed for that step.
    pub unplanned: usize,
    /// The i32 inputs of the last step, as bytes.
    io_bytes: Vec<u8>,
    pub(crate) graph: Graph,
    planner: Planner,
    pub(crate) plan: Plan,
    /// The op list's storage (empty between steps; its views borrow the step's buffers).
    calls: Vec<OpCall<'static>>,
    /// The result as downloaded.
    pub(crate) result_bytes: Vec<u8>,
    /// Cache slots a step uses.
    slots_used: Vec<bool>,
}

/// An empty vector of `U` on `v`'s storage. `T` and `U` must have one
/// layout; here they are one type at two lifetimes, so the op list's
/// storage outlives the borrows of each step's views.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    assert_eq!(Layout::new::<T>(), Layout::new::<U>(), "one layout");
    v.clear();
    let mut v = ManuallyDrop::new(v);
    // SAFETY: the storage was allocated for `capacity` values of a type
    // with `U`'s size and alignment (asserted), and holds no values.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<U>(), 0, v.capacity()) }
}

/// What a step gave back.
#[derive(Clone, Debug, PartialEq)]
pub enum StepOutput {
    /// Row-major `[rows, vocab]` logits.
    Logits(Vec<f32>),
    /// One token per sequence.
    Tokens(Vec<u32>),
}

impl Model {
    /// Loads a checkpoint directory onto `backend`.
    pub fn load(path: &Path, backend: Box<dyn Backend>, options: LoadOptions) -> Result<Self> {
        let start = Instant::now();
        let ckpt = Checkpoint::open(path)?;
        let sources = ckpt.weights()?;
        let (mtp, unused): (Vec<String>, Vec<String>) = ckpt
            .unused(&sources)
            .into_iter()
            .partition(|n| ckpt.is_mtp_tensor(n));
        if !mtp.is_empty() {
            eprintln!(
                "notice: {}: the next-token-prediction layer after layer {} ({} tensors) is not run: glmhal decodes with the main layers only",
                path.display(),
                ckpt.config.layers.saturating_sub(1),
                mtp.len()
            );
        }
        if !unused.is_empty() {
            let shown: Vec<&str> = unused.iter().take(8).map(String::as_str).collect();
            eprintln!(
                "notice: {} tensor(s) of {} are not used: {}{}",
                unused.len(),
                path.display(),
                shown.join(", "),
                if unused.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                }
            );
        }
        let weights = DeviceWeights::load(
            backend.as_ref(),
            &ckpt,
            &sources,
            options.weights,
            &options.progress,
        )?;
        backend.synchronize()?;
        Ok(Model {
            config: ckpt.config.clone(),
            backend,
            weights,
            load_seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The backend it runs on.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Bytes of weights on the device.
    pub fn weight_bytes(&self) -> usize {
        self.weights.bytes
    }

    /// A KV cache for `slots` sequences of up to `capacity` positions.
    pub fn new_cache(&self, capacity: usize, slots: usize, dtype: DType) -> Result<KvCache> {
        KvCache::new(self.backend.as_ref(), &self.config, capacity, slots, dtype)
    }

    /// Runs one step: each sequence of `seqs` feeds its tokens (stacked in
    /// `tokens`) at its positions, writing K and V into its cache slot.
    pub fn step(
        &self,
        cache: &KvCache,
        ws: &mut Workspace,
        seqs: &[SeqStep],
        tokens: &[u32],
        want: Want,
    ) -> Result<StepOutput> {
        let mut out = StepOutput::Tokens(Vec::new());
        self.step_into(cache, ws, seqs, tokens, want, &mut out)?;
        Ok(out)
    }

    /// [`Model::step`] with the result written into `out`, reusing its
    /// storage: with the same `ws` and `out` from step to step, a decode step
    /// makes no heap allocation once the first steps have run.
    pub fn step_into(
        &self,
        cache: &KvCache,
        ws: &mut Workspace,
        seqs: &[SeqStep],
        tokens: &[u32],
        want: Want,
        out: &mut StepOutput,
    ) -> Result<()> {
        self.begin_step(cache, ws, seqs, tokens, want)?;
        let (graph, plan) = (&ws.graph, &ws.plan);
        let arena = ws.arena.as_ref().ok_or_else(missing)?;
        // The whole step at once: backends that record (wgpu) submit it in one go.
        let mut calls: Vec<OpCall<'_>> = recycle(std::mem::take(&mut ws.calls));
        for node in &graph.nodes {
            let view = |o: &Operand| self.view(ws, cache, o);
            calls.push(OpCall {
                op: node.op.clone(),
                inputs: node.inputs.iter().map(view).collect::<Result<_>>()?,
                outputs: std::iter::once(view(&node.output)).collect::<Result<_>>()?,
            });
        }
        let executed = self.backend.execute_step(&calls);
        ws.calls = recycle(calls);
        // Logits that are not finite have no answer: argmax refuses them on
        // the device, and logits read back are checked here; either way the
        // step runs again node by node to name where they came from.
        let finished =
            executed.and_then(|()| self.read_result(graph, plan, arena, &mut ws.result_bytes, out));
        let non_finite = match (&finished, &*out) {
            (Err(HalError::NonFinite { .. }), _) => true,
            (Ok(()), StepOutput::Logits(l)) => l.iter().any(|v| !v.is_finite()),
            _ => false,
        };
        if non_finite {
            return Err(self.non_finite_error(cache, seqs, tokens, want));
        }
        finished
    }

    /// Where operand `o` of the step planned in `ws` lives.
    pub(crate) fn view<'a>(
        &'a self,
        ws: &'a Workspace,
        cache: &'a KvCache,
        o: &Operand,
    ) -> Result<TensorRef<'a>> {
        let mut desc = o.desc.clone();
        let buffer = match o.storage {
            Storage::Act(a) => {
                desc.offset += ws.plan.offsets[a];
                ws.arena.as_ref().ok_or_else(missing)?
            }
            Storage::Weight(w) => self.weights.buffer(w),
            Storage::KCache(l) => &cache.k[l],
            Storage::VCache(l) => &cache.v[l],
            Storage::Io => ws.io.as_ref().ok_or_else(missing)?,
        };
        Ok(buffer.view(desc))
    }

    /// Checks a step, builds and plans its graph in `ws`, sizes the device
    /// buffers and uploads its i32 inputs.
    pub(crate) fn begin_step(
        &self,
        cache: &KvCache,
        ws: &mut Workspace,
        seqs: &[SeqStep],
        tokens: &[u32],
        want: Want,
    ) -> Result<()> {
        let c = &self.config;
        let n: usize = seqs.iter().map(|s| s.len).sum();
        if seqs.is_empty() || n == 0 || tokens.len() != n {
            return Err(HalError::invalid(
                "step",
                format!("{} tokens for sequences totalling {n}", tokens.len()),
            ));
        }
        if let Some(t) = tokens.iter().find(|t| **t as usize >= c.vocab) {
            return Err(HalError::invalid(
                "step",
                format!("token id {t} is not below the vocabulary size {}", c.vocab),
            ));
        }
        let used = &mut ws.slots_used;
        used.clear();
        used.resize(cache.slots, false);
        for s in seqs {
            if s.slot >= cache.slots || std::mem::replace(&mut used[s.slot], true) {
                return Err(HalError::invalid(
                    "step",
                    format!("cache slot {} is out of range or used twice", s.slot),
                ));
            }
            if s.len == 0 || s.start + s.len > cache.capacity {
                return Err(HalError::invalid(
                    "step",
                    format!(
                        "positions {}..{} do not fit the context of {} tokens",
                        s.start,
                        s.start + s.len,
                        cache.capacity
                    ),
                ));
            }
        }
        ws.graph
            .rebuild(
                c,
                &self.weights,
                CacheShape {
                    dtype: cache.dtype,
                    capacity: cache.capacity,
                },
                seqs,
                want,
            )
            .map_err(|e| HalError::invalid("graph", e))?;
        ws.planner.plan_into(&ws.graph.acts, &mut ws.plan);
        self.ensure(ws)?;
        let io = ws.io.as_ref().ok_or_else(missing)?;
        // Tokens, positions, then each sequence's last row, as i32 bytes
        // in a buffer the workspace keeps between steps.
        let bytes = &mut ws.io_bytes;
        bytes.clear();
        let mut put = |v: usize| bytes.extend_from_slice(&(v as i32).to_le_bytes());
        tokens.iter().for_each(|t| put(*t as usize));
        for s in seqs {
            (s.start..s.start + s.len).for_each(&mut put);
        }
        let mut last = 0;
        for s in seqs {
            last += s.len;
            put(last - 1);
        }
        self.backend.upload(io, 0, bytes)
    }

    pub(crate) fn read_result(
        &self,
        graph: &Graph,
        plan: &Plan,
        arena: &Buffer,
        bytes: &mut Vec<u8>,
        out: &mut StepOutput,
    ) -> Result<()> {
        let r = &graph.result;
        let Storage::Act(a) = r.storage else {
            return Err(HalError::invalid(
                "graph",
                "the result is not an activation",
            ));
        };
        bytes.clear();
        bytes.resize(r.desc.dtype.bytes_for(r.desc.numel()), 0);
        self.backend
            .download(arena, plan.offsets[a] + r.desc.offset, bytes)?;
        let words = bytes.chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]);
        // The vector of the variant `out` already holds is refilled in place.
        match (r.desc.dtype, &mut *out) {
            (DType::I32, StepOutput::Tokens(t)) => {
                t.clear();
                t.extend(words.map(|w| i32::from_le_bytes(w) as u32));
            }
            (DType::I32, _) => {
                *out = StepOutput::Tokens(words.map(|w| i32::from_le_bytes(w) as u32).collect())
            }
            (_, StepOutput::Logits(l)) => {
                l.clear();
                l.extend(words.map(f32::from_le_bytes));
            }
            _ => *out = StepOutput::Logits(words.map(f32::from_le_bytes).collect()),
        }
        Ok(())
    }

    /// Grows the device buffers to the planned step's needs.
    fn ensure(&self, ws: &mut Workspace) -> Result<()> {
        let (plan, io_len) = (&ws.plan, ws.graph.io_len);
        if ws.arena.as_ref().is_none_or(|a| a.len() < plan.peak) {
            ws.arena = None; // free before allocating the larger one
            ws.arena = Some(self.backend.alloc(plan.peak)?);
        }
        if ws.io.as_ref().is_none_or(|b| b.len() < io_len * 4) {
            ws.io = None;
            ws.io = Some(self.backend.alloc(io_len * 4)?);
        }
        if plan.peak > ws.planned_peak {
            ws.planned_peak = plan.peak;
            ws.unplanned = plan.unplanned;
        }
        Ok(())
    }

    /// Prefill logits of every position of `tokens` in a fresh cache: `[tokens, vocab]`.
    pub fn logits(&self, tokens: &[u32], cache_dtype: DType) -> Result<Vec<f32>> {
        let cache = self.new_cache(tokens.len().max(1), 1, cache_dtype)?;
        let mut ws = Workspace::default();
        match self.step(
            &cache,
            &mut ws,
            &[SeqStep {
                slot: 0,
                start: 0,
                len: tokens.len(),
            }],
            tokens,
            Want::AllLogits,
        )? {
            StepOutput::Logits(l) => Ok(l),
            StepOutput::Tokens(_) => Err(HalError::invalid("logits", "the step returned tokens")),
        }
    }
}

fn missing() -> HalError {
    HalError::invalid("workspace", "not allocated")
}
