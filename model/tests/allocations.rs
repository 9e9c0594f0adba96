//! A decode step allocates a few containers for the whole step and nothing
//! per op or per layer. This file is its own test binary so it can count
//! every heap allocation.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::Path;

use glmhal_hal::alloc_count::{self, CountingAllocator};
use glmhal_hal::{BackendProvider, DType};
use glmhal_model::{LoadOptions, Model, SeqStep, Want, Workspace};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations a step may make whatever the model's size: the graph's node
/// and activation lists, the memory plan, the op list and the result.
const PER_STEP: u64 = 20;

#[test]
fn a_decode_step_allocates_per_step_not_per_op() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glm4-gqa4-tf5");
    let model = Model::load(
        &dir,
        glmhal_cpu::Provider.open(None).unwrap(),
        LoadOptions::default(),
    )
    .unwrap();
    let cache = model.new_cache(64, 1, DType::F32).unwrap();
    let mut ws = Workspace::default();
    let step = |ws: &mut Workspace, start: usize, token: u32| {
        let seq = SeqStep {
            slot: 0,
            start,
            len: 1,
        };
        model
            .step(&cache, ws, &[seq], &[token], Want::Greedy)
            .unwrap()
    };
    // Warm-up: buffers and pools reach their sizes.
    for pos in 0..4 {
        step(&mut ws, pos, 3);
    }
    let before = alloc_count::allocations().unwrap();
    let steps = 16;
    for pos in 4..4 + steps {
        step(&mut ws, pos, 5);
    }
    let per_step = (alloc_count::allocations().unwrap() - before) / steps as u64;
    let layers = model.config.layers as u64;
    assert!(
        per_step <= PER_STEP,
        "{per_step} allocations per decode step ({layers} layers; at most {PER_STEP} expected)"
    );
}
