//! Whole-model speed: prefill tokens/s and decode tokens/s at several batch
//! sizes, with the weight bandwidth a decode step implies (a routed model's
//! chosen experts only).

use glmhal_hal::{DType, Result};
use glmhal_model::kv_cache::KvCache;
use glmhal_model::{Model, SeqStep, StepOutput, Want, Workspace};

use crate::measure::{measure, Budget};
use crate::schema::{DecodeMeasurement, ModelMeasurement, StepStructure};

/// What to measure on a loaded model.
#[derive(Clone, Debug)]
pub struct ModelPlan {
    /// Prompt length of the prefill (and the prefix every decoded sequence has).
    pub prompt_tokens: usize,
    /// Decode batch sizes.
    pub batches: Vec<usize>,
    /// Timing budget per measurement.
    pub budget: Budget,
}

/// Room past the prompt for the decode steps; positions cycle within it.
const DECODE_ROOM: usize = 64;

/// Measures `model` (loaded in `load_s` seconds) on its backend.
pub fn run(
    selector: &str,
    name: &str,
    model: &Model,
    load_s: f64,
    weights: DType,
    plan: &ModelPlan,
) -> Result<ModelMeasurement> {
    let vocab = model.config.vocab;
    let p = plan.prompt_tokens.max(1);
    let slots = plan.batches.iter().copied().max().unwrap_or(1).max(1);
    let cache = model.new_cache(p + DECODE_ROOM, slots, DType::F32)?;
    let mut ws = Workspace::default();
    let prompt: Vec<u32> = (0..p).map(|i| ((i * 7919 + 13) % vocab) as u32).collect();

    let prefill = measure(plan.budget, || {
        let seq = [SeqStep {
            slot: 0,
            start: 0,
            len: p,
        }];
        model
            .step(&cache, &mut ws, &seq, &prompt, Want::Greedy)
            .map(|_| ())
    })?;
    // Every slot gets the prompt as its prefix before decoding.
    for slot in 1..slots {
        let seq = [SeqStep {
            slot,
            start: 0,
            len: p,
        }];
        model.step(&cache, &mut ws, &seq, &prompt, Want::Greedy)?;
    }
    let mut decode = Vec::new();
    for &batch in &plan.batches {
        let mut k = 0usize;
        // Heap allocations inside `step_into` (not the harness's), after the first step.
        let (mut allocated, mut counted) = (0u64, 0u64);
        let mut out = StepOutput::Tokens(Vec::new());
        let step = measure(plan.budget, || {
            let position = p + k % DECODE_ROOM;
            k += 1;
            let seqs = decode_seqs(batch, position);
            let tokens: Vec<u32> = (0..batch)
                .map(|b| ((position * 31 + b) % vocab) as u32)
                .collect();
            let before = glmhal_testkit::alloc_count::allocations();
            model.step_into(&cache, &mut ws, &seqs, &tokens, Want::Greedy, &mut out)?;
            if let (Some(b), Some(a), true) =
                (before, glmhal_testkit::alloc_count::allocations(), k > 1)
            {
                allocated += a - b;
                counted += 1;
            }
            Ok(())
        })?;
        let t = step.median_s.max(1e-12);
        let allocations_per_step = (counted > 0).then(|| allocated as f64 / counted as f64);
        let structure = step_structure(model, &cache, &mut ws, batch, p + k % DECODE_ROOM)?;
        decode.push(DecodeMeasurement {
            batch,
            step,
            tps: batch as f64 / t,
            effective_gbps: model.active_weight_bytes(batch) as f64 / t / 1e9,
            ceiling_share: None,
            allocations_per_step,
            structure,
        });
    }
    Ok(ModelMeasurement {
        backend: selector.to_string(),
        model: name.to_string(),
        weights: weights.name().to_string(),
        weight_bytes: model.weight_bytes() as u64,
        active_weight_bytes: model.active_weight_bytes(1),
        load_s,
        prompt_tokens: p,
        prefill,
        prefill_tps: p as f64 / prefill.median_s.max(1e-12),
        decode,
    })
}

/// One more decode step of `batch` sequences at `position`, counted by the
/// backend (`None` when it does not count).
fn step_structure(
    model: &Model,
    cache: &KvCache,
    ws: &mut Workspace,
    batch: usize,
    position: usize,
) -> Result<Option<StepStructure>> {
    let vocab = model.config.vocab;
    let seqs = decode_seqs(batch, position);
    let tokens: Vec<u32> = (0..batch).map(|b| ((b * 17 + 5) % vocab) as u32).collect();
    let Some(before) = model.backend().counters() else {
        return Ok(None);
    };
    model.step(cache, ws, &seqs, &tokens, Want::Greedy)?;
    let Some(after) = model.backend().counters() else {
        return Ok(None);
    };
    let counters = after.since(&before);
    let minimum_bytes = model.minimum_step_reads(&seqs, cache.dtype);
    Ok(Some(StepStructure {
        counters,
        launches_per_layer: (counters.launches + counters.library_calls) as f64
            / model.config.layers.max(1) as f64,
        minimum_bytes,
        read_ratio: counters.bytes_read as f64 / minimum_bytes.max(1) as f64,
    }))
}

/// One token for each of the sequences in slots `0..batch`, at `position`.
fn decode_seqs(batch: usize, position: usize) -> Vec<SeqStep> {
    (0..batch)
        .map(|slot| SeqStep {
            slot,
            start: position,
            len: 1,
        })
        .collect()
}
