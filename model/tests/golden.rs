//! The executor against transformers: logits and greedy tokens of the golden
//! fixtures (made by scripts/make_goldens.py), on the CPU backend.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_hal::{BackendProvider, DType};
use glmhal_model::generate::greedy_without_cache;
use glmhal_model::golden::{fixture_dir, Golden, FIXTURES};
use glmhal_model::{generate, GenerateOptions, LoadOptions, Model, Sampling};

fn golden(name: &str) -> Golden {
    Golden::load(&fixture_dir(name)).unwrap()
}

fn load(name: &str, weights: Option<DType>) -> Model {
    let backend = glmhal_cpu::Provider
        .open(None, &glmhal_hal::BackendOptions::default())
        .unwrap();
    Model::load(
        &fixture_dir(name),
        backend,
        LoadOptions {
            weights,
            ..Default::default()
        },
    )
    .unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn top1(logits: &[f32], vocab: usize) -> Vec<u32> {
    logits
        .chunks_exact(vocab)
        .map(glmhal_model::sampler::argmax)
        .collect()
}

/// Gap between the best and second-best logit of each row.
fn margins(logits: &[f32], vocab: usize) -> Vec<f32> {
    logits
        .chunks_exact(vocab)
        .map(|row| {
            let best = glmhal_model::sampler::argmax(row) as usize;
            let second = row
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != best)
                .fold(f32::MIN, |m, (_, v)| m.max(*v));
            row[best] - second
        })
        .collect()
}

#[test]
fn f32_logits_match_transformers_within_1e_4() {
    for name in FIXTURES {
        let g = golden(name);
        let m = load(name, None);
        let logits = m.logits(&g.prompt, DType::F32).unwrap();
        let err = max_abs(&logits, &g.logits);
        eprintln!("{name}: max |logit - transformers| = {err:.2e}");
        assert!(err <= 1e-4, "{name}: {err}");
    }
}

#[test]
fn greedy_tokens_match_with_and_without_the_cache() {
    for name in FIXTURES {
        let g = golden(name);
        let m = load(name, None);
        let opts = GenerateOptions {
            max_new_tokens: g.greedy.len(),
            sampling: Sampling::default(),
            stop: vec![],
            context: None,
            cache_dtype: DType::F32,
            beyond_context: false,
        };
        let mut streamed = Vec::new();
        let out = generate(&m, &g.prompt, &opts, &mut |t| streamed.push(t)).unwrap();
        assert_eq!(out.tokens, g.greedy, "{name}: KV-cache path");
        assert_eq!(streamed, g.greedy, "{name}: streamed tokens");
        assert_eq!(
            greedy_without_cache(&m, &g.prompt, g.greedy.len()).unwrap(),
            g.greedy,
            "{name}: recompute path"
        );
        // An f16 cache and sampling with a penalty of 1 and temperature 0 through the host path agree too.
        let host = GenerateOptions {
            cache_dtype: DType::F16,
            beyond_context: false,
            sampling: Sampling {
                repetition_penalty: 1.0 + 1e-9,
                ..Sampling::default()
            },
            ..opts
        };
        assert_eq!(
            generate(&m, &g.prompt, &host, &mut |_| {}).unwrap().tokens,
            g.greedy,
            "{name}: f16 cache"
        );
    }
}

#[test]
fn reduced_precision_weights_stay_close() {
    for name in FIXTURES {
        let g = golden(name);
        let vocab = g.logits.len() / g.prompt.len();
        let scale = g.logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let want = top1(&g.logits, vocab);
        let gaps = margins(&g.logits, vocab);
        // Error bounds relative to the largest logit (documented in docs/MODEL.md).
        // Q8_0 moves a routed model's hidden states enough to send a token
        // whose f32 routing is decided by a few thousandths to another
        // expert (one token of the grouped fixture's third layer): its
        // logits then move by that expert's whole contribution.
        let q8 = if name.starts_with("glm4moe") {
            2.5e-1
        } else {
            1e-1
        };
        for (dtype, tol) in [(DType::F16, 5e-3), (DType::Bf16, 6e-2), (DType::Q8_0, q8)] {
            let m = load(name, Some(dtype));
            let logits = m.logits(&g.prompt, DType::F32).unwrap();
            let err = max_abs(&logits, &g.logits);
            let got = top1(&logits, vocab);
            let agree = got.iter().zip(&want).filter(|(a, b)| a == b).count();
            eprintln!(
                "{name} {dtype}: max error {:.2e} of the largest logit, top-1 agreement {agree}/{}",
                err / scale,
                want.len()
            );
            assert!(err / scale <= tol, "{name} {dtype}: {}", err / scale);
            // Wherever the reference's winner leads by more than twice the error, it must still win.
            for (p, gap) in gaps.iter().enumerate() {
                if *gap > 2.0 * err {
                    assert_eq!(
                        got[p], want[p],
                        "{name} {dtype}: position {p} (margin {gap}, error {err})"
                    );
                }
            }
            if dtype == DType::F16 {
                assert_eq!(agree, want.len(), "{name}: f16 must keep every top-1");
            }
        }
    }
}
