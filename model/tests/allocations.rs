//! A decode step makes no heap allocation of its own once the first steps
//! have sized the workspace, and neither does greedy generation per token.
//! What remains is the CPU thread pool's: each step is handed to the pool
//! once, and rayon's queue takes a new block of 63 job slots every 63
//! hand-offs, so up to one allocation per 63 steps. This file is its own
//! test binary so it can count every heap allocation.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::Path;
use std::sync::Mutex;

use glmhal_hal::alloc_count::{self, CountingAllocator};
use glmhal_hal::{BackendProvider, DType};
use glmhal_model::{
    generate, GenerateOptions, LoadOptions, Model, Sampling, SeqStep, StepOutput, Want, Workspace,
};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The count is process-wide: the tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn tiny_model() -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glm4-gqa4-tf5");
    Model::load(
        &dir,
        glmhal_cpu::Provider.open(None).unwrap(),
        LoadOptions::default(),
    )
    .unwrap()
}

#[test]
fn a_decode_step_allocates_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = tiny_model();
    let cache = model.new_cache(48, 1, DType::F32).unwrap();
    let mut ws = Workspace::default();
    for want in [Want::Greedy, Want::LastLogits] {
        let mut out = StepOutput::Tokens(Vec::new());
        let mut step = |ws: &mut Workspace, start: usize, token: u32| {
            let seq = SeqStep {
                slot: 0,
                start,
                len: 1,
            };
            model
                .step_into(&cache, ws, &[seq], &[token], want, &mut out)
                .unwrap()
        };
        // Warm-up: buffers and pools reach their sizes.
        for pos in 0..16 {
            step(&mut ws, pos, 3);
        }
        let before = alloc_count::allocations().unwrap();
        for pos in 16..48 {
            step(&mut ws, pos, 5);
        }
        let made = alloc_count::allocations().unwrap() - before;
        // At most the pool queue's one block per 63 steps.
        assert!(
            made <= 1,
            "{made} allocations in 32 decode steps ({want:?})"
        );
    }
}

#[test]
fn greedy_generation_allocates_nothing_per_token() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = tiny_model();
    // The same prompt with 8 and with 40 new tokens: any allocation made
    // per token shows up as a difference between the two runs.
    let count = |tokens: usize| {
        let opts = GenerateOptions {
            max_new_tokens: tokens,
            sampling: Sampling::default(),
            stop: Vec::new(),
            context: None,
            cache_dtype: DType::F32,
        };
        let before = alloc_count::allocations().unwrap();
        let generation = generate(&model, &[1, 2, 3], &opts, &mut |_| {}).unwrap();
        assert_eq!(generation.tokens.len(), tokens);
        alloc_count::allocations().unwrap() - before
    };
    count(8); // warm-up of the kernels' pools
    let (short, long) = (count(8), count(40));
    // 32 more steps: at most the pool queue's one block per 63 steps more.
    assert!(
        long <= short + 1,
        "{short} allocations for 8 tokens, {long} for 40"
    );
}
