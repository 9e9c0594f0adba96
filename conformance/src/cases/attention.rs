//! Cases for rope, attention and kv_write: GLM's shapes first.

use glmhal_hal::{DType, Op, RopeMode};

use super::{dense, push, unit};
use crate::case::{Case, Fill, TensorSpec};
use glmhal_hal::rng::{hash_str, Rng};

pub(crate) fn rope(cases: &mut Vec<Case>) {
    // (tokens, heads, head_dim, rot, theta)
    let shapes = [
        (1, 1, 4, 4, 10000.0),
        (5, 3, 6, 4, 10000.0),
        (7, 2, 128, 64, 10000.0),
        (33, 16, 128, 64, 5e6),
        (13, 2, 128, 128, 10000.0),
    ];
    for x in DType::FLOATS {
        for mode in [RopeMode::Interleaved, RopeMode::Neox] {
            for (t, heads, d, rot, theta) in shapes {
                let pos = TensorSpec::contiguous(DType::I32, &[t], Fill::Ids(4096));
                push(
                    cases,
                    Op::Rope { rot, theta, mode },
                    vec![dense(x, &[t, heads, d]), pos],
                    dense(x, &[t, heads, d]),
                    "",
                );
            }
            // q as a slice of a fused qkv row (16 q heads + 2 k + 2 v heads), f32 out.
            let q = TensorSpec::fused_slice(x, &[9, 16, 128], 20 * 128, 0, unit());
            let pos = TensorSpec::contiguous(DType::I32, &[9], Fill::Ids(4096));
            push(
                cases,
                Op::Rope {
                    rot: 64,
                    theta: 10000.0,
                    mode,
                },
                vec![q, pos],
                dense(DType::F32, &[9, 16, 128]),
                "fused-qkv slice",
            );
        }
    }
}

pub(crate) fn attention(cases: &mut Vec<Case>) {
    // (queries, cached keys, heads, kv heads, head_dim, tag)
    let shapes = [
        (1, 1, 1, 1, 5, ""),
        (1, 7, 4, 2, 8, ""),
        (1, 128, 16, 2, 128, ""),
        (1, 4096, 16, 2, 128, "large-shape"),
        (5, 5, 2, 1, 13, ""),
        (33, 33, 4, 4, 16, ""),
        (128, 128, 16, 2, 128, ""),
        (16, 300, 16, 2, 128, ""),
    ];
    let combos = [
        (DType::F32, DType::F32, DType::F32),
        (DType::F32, DType::F16, DType::F32),
        (DType::F16, DType::F16, DType::F16),
        (DType::Bf16, DType::Bf16, DType::Bf16),
        (DType::F32, DType::Bf16, DType::F32),
    ];
    for (q, kv, o) in combos {
        for (t, s, nh, nkv, d, tag) in shapes {
            let op = Op::Attention {
                scale: (d as f64).powf(-0.5),
                causal: true,
            };
            let ins = vec![
                dense(q, &[t, nh, d]),
                dense(kv, &[s, nkv, d]),
                dense(kv, &[s, nkv, d]),
            ];
            push(cases, op, ins, dense(o, &[t, nh, d]), tag);
        }
        // q from a fused qkv row; k and v the used prefix of a cache with room for 64.
        let row = (16 + 2 * 2) * 128;
        let ins = vec![
            TensorSpec::fused_slice(q, &[4, 16, 128], row, 0, unit()),
            TensorSpec::prefix(kv, &[37, 2, 128], 64, unit()),
            TensorSpec::prefix(kv, &[37, 2, 128], 64, unit()),
        ];
        push(
            cases,
            Op::Attention {
                scale: 128f64.powf(-0.5),
                causal: true,
            },
            ins,
            dense(o, &[4, 16, 128]),
            "cache view",
        );
    }
    // Long contexts whose weight concentrates on a few keys far back (the
    // queries and those keys share a large first component): a key dropped,
    // duplicated or misplaced there moves the output far past its bound.
    for (q, kv, o) in combos {
        concentrated(
            cases,
            (q, kv, o),
            (1, 4096, 8, 2, 64),
            &[3, 100],
            "long-context",
        );
        if kv != DType::Bf16 {
            concentrated(
                cases,
                (q, kv, o),
                (1, 32768, 16, 2, 128),
                &[5, 1000, 20000],
                "long-context large-shape",
            );
        }
    }
    concentrated(
        cases,
        (DType::F32, DType::F16, DType::F32),
        (3, 3000, 4, 1, 32),
        &[0, 7],
        "long-context",
    );
    // Non-causal (encoder-style) attention.
    let ins = vec![
        dense(DType::F32, &[6, 4, 16]),
        dense(DType::F32, &[9, 2, 16]),
        dense(DType::F32, &[9, 2, 16]),
    ];
    push(
        cases,
        Op::Attention {
            scale: 0.25,
            causal: false,
        },
        ins,
        dense(DType::F32, &[6, 4, 16]),
        "",
    );
    // Scores that overflow f16 unless Q is scaled first and the softmax runs in f32 (GLM-4's trap).
    let big = Fill::Uniform(80.0);
    let ins = vec![
        TensorSpec::contiguous(DType::F16, &[8, 16, 128], big.clone()),
        TensorSpec::contiguous(DType::F16, &[64, 2, 128], big),
        dense(DType::F16, &[64, 2, 128]),
    ];
    push(
        cases,
        Op::Attention {
            scale: 128f64.powf(-0.5),
            causal: true,
        },
        ins,
        dense(DType::F16, &[8, 16, 128]),
        "large-magnitude",
    );
}

/// Attention of `t` queries over `s` keys whose queries and keys `far`
/// have a large first component, so those keys draw much of the weight.
fn concentrated(
    cases: &mut Vec<Case>,
    (q, kv, o): (DType, DType, DType),
    (t, s, nh, nkv, d): (usize, usize, usize, usize, usize),
    far: &[usize],
    tag: &str,
) {
    let pull = 6.0;
    let queries = (0..t * nh).map(|i| (i * d, pull)).collect();
    let keys = far
        .iter()
        .flat_map(|j| (0..nkv).map(move |g| ((j * nkv + g) * d, pull)))
        .collect();
    let ins = vec![
        TensorSpec::contiguous(
            q,
            &[t, nh, d],
            Fill::Planted {
                scale: 1.0,
                values: queries,
            },
        ),
        TensorSpec::contiguous(
            kv,
            &[s, nkv, d],
            Fill::Planted {
                scale: 1.0,
                values: keys,
            },
        ),
        dense(kv, &[s, nkv, d]),
    ];
    let op = Op::Attention {
        scale: (d as f64).powf(-0.5),
        causal: true,
    };
    push(cases, op, ins, dense(o, &[t, nh, d]), tag);
}

/// `n` distinct positions in `0..capacity`, fixed by `key`.
fn distinct_positions(key: &str, n: usize, capacity: usize) -> Vec<i32> {
    let mut all: Vec<i32> = (0..capacity as i32).collect();
    let mut rng = Rng::new(hash_str(key));
    for i in 0..n {
        let j = i + rng.below(capacity - i);
        all.swap(i, j);
    }
    all.truncate(n);
    all
}

pub(crate) fn kv_write(cases: &mut Vec<Case>) {
    let combos = [
        (DType::F32, DType::F32),
        (DType::F32, DType::F16),
        (DType::F16, DType::F16),
        (DType::Bf16, DType::Bf16),
        (DType::F32, DType::Bf16),
    ];
    for (rows, cache) in combos {
        for (t, cap, kv, d) in [
            (1, 8, 1, 5),
            (5, 16, 2, 128),
            (33, 64, 2, 128),
            (1, 4096, 2, 128),
        ] {
            let key = format!("kv_write {rows} {cache} {t} {cap}");
            let pos = TensorSpec::contiguous(
                DType::I32,
                &[t],
                Fill::Values(distinct_positions(&key, t, cap)),
            );
            push(
                cases,
                Op::KvWrite,
                vec![dense(rows, &[t, kv, d]), pos],
                dense(cache, &[cap, kv, d]),
                "",
            );
        }
        // The new k rows as a slice of a fused qkv row, written at consecutive positions.
        let k = TensorSpec::fused_slice(rows, &[6, 2, 128], 20 * 128, 16 * 128, unit());
        let pos = TensorSpec::contiguous(DType::I32, &[6], Fill::Values((10..16).collect()));
        push(
            cases,
            Op::KvWrite,
            vec![k, pos],
            dense(cache, &[32, 2, 128]),
            "fused-qkv slice",
        );
    }
}
