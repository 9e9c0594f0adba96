//! A decode step makes no heap allocation of its own once the first steps
//! have sized the workspace, and neither does greedy generation per token.
//! What remains is the CPU thread pool's: each step is handed to the pool
//! once, and rayon's queue takes a new block of 63 job slots every 63
//! hand-offs, so up to one allocation per 63 steps; and, rarely, a kernel's
//! work split one way more than in any step before takes one more buffer
//! for the pool. The tests allow a few (see [`SLACK`]): an allocation per
//! step or per op would show as dozens or thousands. This file is its own
//! test binary so it can count every heap allocation.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::Path;
use std::sync::Mutex;

use glmhal_hal::{BackendProvider, DType};
use glmhal_model::{
    generate, GenerateOptions, LoadOptions, Model, Sampling, SeqStep, StepOutput, Want, Workspace,
};
use glmhal_testkit::alloc_count::{self, CountingAllocator};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations 32 decode steps may make: the thread pool's (see above).
const SLACK: u64 = 4;
/// Allocations two generations may differ by besides their extra tokens:
/// each warms its own workspace and cache, and the kernels' pools may take
/// a buffer or two more in one than in the other.
const GENERATION_SLACK: u64 = 8;

/// The count is process-wide: the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn tiny_model() -> Model {
    tiny_model_with(LoadOptions::default())
}

fn tiny_model_with(options: LoadOptions) -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glm4-gqa4-tf5");
    Model::load(
        &dir,
        glmhal_cpu::Provider
            .open(None, &glmhal_hal::BackendOptions::default())
            .unwrap(),
        options,
    )
    .unwrap()
}

/// Heap allocations in 32 decode steps of `batch` sequences (each at the
/// same position, one token a step, a cache of `cache` values), after 16
/// steps of warm-up.
fn decode_allocations(model: &Model, batch: usize, cache: DType, want: Want) -> u64 {
    let cache = model.new_cache(48, batch, cache).unwrap();
    let mut ws = Workspace::default();
    let mut out = StepOutput::Tokens(Vec::new());
    let mut step = |pos: usize| {
        let seqs: Vec<SeqStep> = (0..batch)
            .map(|slot| SeqStep {
                slot,
                start: pos,
                len: 1,
            })
            .collect();
        let tokens = vec![(pos % 7) as u32 + 1; batch];
        let before = alloc_count::allocations().unwrap();
        model
            .step_into(&cache, &mut ws, &seqs, &tokens, want, &mut out)
            .unwrap();
        alloc_count::allocations().unwrap() - before
    };
    for pos in 0..16 {
        step(pos);
    }
    (16..48).map(step).sum()
}

#[test]
fn batched_decode_with_quantized_weights_allocates_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Eight rows take the quantized dot products (three scratch vectors a
    // row), sixteen the integer GEMM.
    for weights in [DType::Q4_0, DType::Q8_0] {
        let model = tiny_model_with(LoadOptions {
            weights: Some(weights),
            ..Default::default()
        });
        for batch in [8usize, 16] {
            let made = decode_allocations(&model, batch, DType::F16, Want::Greedy);
            assert!(
                made <= SLACK,
                "{made} allocations in 32 steps of {batch} sequences ({weights} weights)"
            );
        }
    }
}

#[test]
fn a_decode_step_allocates_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = tiny_model();
    for want in [Want::Greedy, Want::LastLogits] {
        let made = decode_allocations(&model, 1, DType::F32, want);
        assert!(
            made <= SLACK,
            "{made} allocations in 32 decode steps ({want:?})"
        );
    }
}

#[test]
fn greedy_generation_allocates_nothing_per_token() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = tiny_model();
    // The same prompt with 8 and with 72 new tokens: any allocation made
    // per token shows up as a difference of 64 or more between the runs.
    let count = |tokens: usize| {
        let opts = GenerateOptions {
            max_new_tokens: tokens,
            sampling: Sampling::default(),
            stop: Vec::new(),
            context: None,
            cache_dtype: DType::F32,
            beyond_context: false,
        };
        let before = alloc_count::allocations().unwrap();
        let generation = generate(&model, &[1, 2, 3], &opts, &mut |_| {}).unwrap();
        assert_eq!(generation.tokens.len(), tokens);
        alloc_count::allocations().unwrap() - before
    };
    count(8); // warm-up of the kernels' pools
    let (short, long) = (count(8), count(72));
    assert!(
        long <= short + GENERATION_SLACK,
        "{short} allocations for 8 tokens, {long} for 72"
    );
}
