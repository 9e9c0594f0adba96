//! One greedy decode step of a small synthetic GLM-4 (f16 weights, 512
//! hidden, 4 layers, 8192 vocab) on every backend: the executor records the
//! step, the backend runs it and only the sampled token comes back.

#![allow(missing_docs)] // criterion's macros define undocumented functions

use criterion::{criterion_group, criterion_main, Criterion};
use glmhal_benches::backends;
use glmhal_hal::DType;
use glmhal_model::synth::{synth, Preset};
use glmhal_model::{LayerOrder, LoadOptions, Model, SeqStep, Want, Workspace};

const PRESET: Preset = Preset {
    name: "bench-decode",
    order: LayerOrder::Glm4,
    hidden: 512,
    layers: 4,
    heads: 8,
    kv_heads: 2,
    head_dim: 64,
    ffn: 1536,
    vocab: 8192,
    theta: 10000.0,
    eps: 1e-5,
    context: 1024,
    moe: None,
};

const PROMPT: usize = 32;

fn decode_step(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("glmhal-bench-decode-{}", std::process::id()));
    synth(&PRESET, &dir, DType::F16, 11).expect("synthesizing the bench model");
    let mut group = c.benchmark_group("decode_step");
    for (selector, backend) in backends() {
        let model = match Model::load(&dir, backend, LoadOptions::default()) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("bench: {selector} cannot load the model: {e}");
                continue;
            }
        };
        let cache = model
            .new_cache(PRESET.context, 1, DType::F32)
            .expect("cache");
        let mut ws = Workspace::default();
        let prompt: Vec<u32> = (0..PROMPT as u32).map(|i| (i * 131 + 7) % 8192).collect();
        let seq = |start, len| {
            [SeqStep {
                slot: 0,
                start,
                len,
            }]
        };
        if let Err(e) = model.step(&cache, &mut ws, &seq(0, PROMPT), &prompt, Want::Greedy) {
            eprintln!("bench: {selector} cannot run the model: {e}");
            continue;
        }
        let mut position = PROMPT;
        group.bench_function(format!("{}-f16/{selector}", PRESET.name), |bench| {
            bench.iter(|| {
                // Positions cycle through the cache so every step attends over a realistic prefix.
                position = if position + 1 >= PRESET.context {
                    PROMPT
                } else {
                    position + 1
                };
                model
                    .step(
                        &cache,
                        &mut ws,
                        &seq(position, 1),
                        &[position as u32 % 8192],
                        Want::Greedy,
                    )
                    .expect("decode step")
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = decode_step
}
criterion_main!(benches);
