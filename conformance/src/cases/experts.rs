//! Cases for the mixture-of-experts ops: the router's selection and
//! weights, and the expert product.
//!
//! Selection is judged exactly, so its cases decide only between scores
//! farther apart than any declared f32 path can blur ([`decidable_rows`]
//! redraws a random row that does not), and plant the decisions a bf16
//! router gets wrong: scores 10⁻⁴ apart, which f32 orders and bf16 merges
//! into a tie, and exact ties (identical logit and bias), which every
//! backend must give to the lowest index.

use glmhal_hal::rng::Rng;
use glmhal_hal::{DType, HalError, HostTensor, Op, Precision, Result, TensorDesc};

use super::{dense, push, unit};
use crate::case::{Case, Fill, TensorSpec};

/// Function error (units of f32 roundoff) the random selection rows are
/// separated for: above every backend's declaration.
const SEPARATED_FOR_ULPS: f64 = 128.0;

pub(crate) fn mat_mul_id(cases: &mut Vec<Case>) {
    for x in DType::FLOATS {
        for w in DType::WEIGHTS {
            // (tokens, rows per token, K, experts, N, chosen per token)
            let mut shapes = vec![
                (1, 1, 64, 8, 32, 2),
                (5, 3, 64, 4, 33, 3),
                (13, 1, 96, 16, 7, 4),
            ];
            if !w.is_quantized() {
                shapes.extend([(3, 1, 13, 5, 9, 2), (2, 1, 1, 3, 1, 1)]);
            }
            for (t, rows, k, e, n, chosen) in shapes {
                let ids = TensorSpec::contiguous(DType::I32, &[t, chosen], Fill::Ids(e));
                push(
                    cases,
                    Op::MatMulId,
                    vec![dense(x, &[t, rows, k]), dense(w, &[e, n, k]), ids],
                    dense(DType::F32, &[t, chosen, n]),
                    "",
                );
            }
            // Views: rows of x padded, experts' rows padded (or transposed),
            // ids naming the first and the last expert, a padded f16 output.
            let wv = if w.is_quantized() {
                TensorSpec::padded(w, &[6, 9, 64], 32, unit())
            } else {
                TensorSpec::transposed(w, &[6, 9, 64], unit())
            };
            let ids =
                TensorSpec::contiguous(DType::I32, &[3, 2], Fill::Values(vec![5, 0, 0, 5, 2, 2]));
            push(
                cases,
                Op::MatMulId,
                vec![TensorSpec::padded(x, &[3, 2, 64], 5, unit()), wv, ids],
                TensorSpec::padded(DType::F16, &[3, 2, 9], 3, unit()),
                "strided",
            );
        }
    }
    // Dense products of `tokens` rows (`rows` each) of K through `chosen` of
    // `experts` experts of N: more (token, slot) pairs than one grid
    // dimension holds (65535, a prefill of 8200 tokens through 8 experts
    // each), and GLM-4.5-Air's decode gate (K = hidden 4096, N = 1408, the 8
    // experts in reverse) and prefill down (64 tokens × 8 through 16).
    // (w, [tokens, rows, K, experts, N, chosen], ids, tag); x is f32.
    let air = [DType::Bf16, DType::Q8_0, DType::Q4_0];
    let reverse = || Fill::Values((0..8).rev().collect());
    let mut dense_cases = vec![(
        DType::F16,
        [8200, 1, 32, 4, 3, 8],
        Fill::Ids(4),
        "pairs past one grid dimension",
    )];
    for w in air {
        dense_cases.push((w, [1, 1, 4096, 8, 1408, 8], reverse(), "large-shape"));
        dense_cases.push((w, [64, 8, 1408, 16, 512, 8], Fill::Ids(16), "large-shape"));
    }
    for (w, [t, rows, k, e, n, chosen], fill, tag) in dense_cases {
        push(
            cases,
            Op::MatMulId,
            vec![
                dense(DType::F32, &[t, rows, k]),
                dense(w, &[e, n, k]),
                TensorSpec::contiguous(DType::I32, &[t, chosen], fill),
            ],
            dense(DType::F32, &[t, chosen, n]),
            tag,
        );
    }
}

/// Router logits: `tokens` rows of `experts` scores uniform in
/// `[-scale, scale]`, as a model's f32 router product gives them, with
/// `planted` values.
fn logits(tokens: usize, experts: usize, scale: f32, planted: Vec<(usize, f32)>) -> TensorSpec {
    TensorSpec::contiguous(
        DType::F32,
        &[tokens, experts],
        Fill::Planted {
            scale,
            values: planted,
        },
    )
}

/// The correction bias, uniform in `[-scale, scale]` with `planted` values.
fn bias(experts: usize, scale: f32, planted: Vec<(usize, f32)>) -> TensorSpec {
    TensorSpec::contiguous(
        DType::F32,
        &[experts],
        Fill::Planted {
            scale,
            values: planted,
        },
    )
}

pub(crate) fn moe_select(cases: &mut Vec<Case>) {
    // (tokens, experts, top_k, n_group, topk_group, tag)
    let shapes = [
        (1, 8, 2, 1, 1, ""),
        (5, 16, 4, 4, 2, ""),
        (13, 64, 6, 8, 3, ""),
        (3, 8, 4, 4, 2, "kept groups hold exactly top_k"),
        (33, 160, 8, 1, 1, "GLM-4.5"),
        (7, 128, 8, 1, 1, "GLM-4.5-Air"),
        (4, 64, 4, 1, 1, "GLM-4.7-Flash"),
        (2, 256, 8, 8, 4, "GLM-5"),
    ];
    for (t, e, top_k, n_group, topk_group, tag) in shapes {
        let op = Op::MoeSelect {
            top_k,
            n_group,
            topk_group,
        };
        push(
            cases,
            op,
            vec![logits(t, e, 4.0, vec![]), bias(e, 0.5, vec![])],
            dense(DType::I32, &[t, top_k]),
            tag,
        );
    }
    // Rows of a wider tensor, into a padded output.
    push(
        cases,
        Op::MoeSelect {
            top_k: 3,
            n_group: 2,
            topk_group: 1,
        },
        vec![
            TensorSpec::padded(DType::F32, &[5, 12], 4, Fill::Uniform(4.0)),
            bias(12, 0.5, vec![]),
        ],
        TensorSpec::padded(DType::I32, &[5, 3], 2, Fill::Ids(1)),
        "strided",
    );
    planted_ties(cases);
}

/// The decisions a bf16 router gets wrong, planted where they decide.
fn planted_ties(cases: &mut Vec<Case>) {
    let e = 16;
    let at = |row: usize, expert: usize| row * e + expert;
    // Experts with a planted logit get bias 0.4 and the others at most
    // 0.05, with random logits in [-2, 2], so planted scores outrank random ones.
    let mut biases: Vec<(usize, f32)> = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 12]
        .iter()
        .map(|i| (*i, 0.4))
        .collect();
    biases.push((13, 0.4003));
    let logits_planted = vec![
        // Row 0: 1 and 5 lead; 3, 9 and 12 tie exactly for the last two places: 3 and 9 win.
        (at(0, 1), 4.0),
        (at(0, 5), 4.0),
        (at(0, 3), 3.0),
        (at(0, 9), 3.0),
        (at(0, 12), 3.0),
        // Row 1: 0, 4 and 11 lead; 7's logit is 0.004 above 2's (one bf16 value): 7 wins.
        (at(1, 0), 4.0),
        (at(1, 4), 4.0),
        (at(1, 11), 4.0),
        (at(1, 2), 2.5),
        (at(1, 7), 2.504),
        // Row 2: 1, 5 and 9 lead; 6 and 13 have equal logits and 13's bias
        // is 0.0003 higher (one bf16 value): 13 wins.
        (at(2, 1), 4.0),
        (at(2, 5), 4.0),
        (at(2, 9), 4.0),
        (at(2, 6), 3.0),
        (at(2, 13), 3.0),
    ];
    push(
        cases,
        Op::MoeSelect {
            top_k: 4,
            n_group: 1,
            topk_group: 1,
        },
        vec![logits(5, e, 2.0, logits_planted), bias(e, 0.05, biases)],
        dense(DType::I32, &[5, 4]),
        "planted near-ties",
    );
    // Groups of 4, two kept. Row 0: group 0 leads; groups 1 and 3 have
    // identical best pairs and tie exactly: group 1 is kept. Row 1: group 3's
    // second best is 0.004 above group 2's (one bf16 value): group 3 is kept.
    let grouped = vec![
        (at(0, 0), 4.0),
        (at(0, 1), 3.8),
        (at(0, 4), 3.0),
        (at(0, 5), 3.5),
        (at(0, 12), 3.0),
        (at(0, 13), 3.5),
        (at(1, 0), 4.0),
        (at(1, 1), 3.8),
        (at(1, 8), 3.5),
        (at(1, 9), 3.0),
        (at(1, 12), 3.5),
        (at(1, 13), 3.004),
    ];
    let group_biases: Vec<(usize, f32)> = [0, 1, 4, 5, 8, 9, 12, 13]
        .iter()
        .map(|i| (*i, 0.4))
        .collect();
    push(
        cases,
        Op::MoeSelect {
            top_k: 4,
            n_group: 4,
            topk_group: 2,
        },
        vec![logits(4, e, 2.0, grouped), bias(e, 0.05, group_biases)],
        dense(DType::I32, &[4, 4]),
        "planted group ties",
    );
}

pub(crate) fn moe_weights(cases: &mut Vec<Case>) {
    // (tokens, experts, chosen, normalize, scale)
    for (t, e, k, normalize, scale) in [
        (1, 8, 2, true, 1.0),
        (5, 16, 4, false, 1.0),
        (13, 160, 8, true, 2.5),
        (7, 128, 8, true, 1.0),
        (3, 64, 4, false, 1.8),
        (2, 5, 1, true, 1.0),
    ] {
        push(
            cases,
            Op::MoeWeights { normalize, scale },
            vec![
                logits(t, e, 4.0, vec![]),
                TensorSpec::contiguous(DType::I32, &[t, k], Fill::Ids(e)),
            ],
            dense(DType::F32, &[t, k]),
            "",
        );
    }
    push(
        cases,
        Op::MoeWeights {
            normalize: true,
            scale: 2.5,
        },
        vec![
            TensorSpec::padded(DType::F32, &[4, 32], 8, Fill::Uniform(8.0)),
            TensorSpec::padded(DType::I32, &[4, 8], 1, Fill::Ids(32)),
        ],
        TensorSpec::padded(DType::F32, &[4, 8], 2, unit()),
        "strided",
    );
}

/// Redraws the unplanted logits of each `moe_select` row whose decisions
/// lie closer than [`SEPARATED_FOR_ULPS`] allows, so exact judging holds
/// for every backend's declaration; a row whose planted values decide too
/// closely is an error in the case.
pub(crate) fn decidable_rows(case: &Case, inputs: &mut [HostTensor], rng: &mut Rng) -> Result<()> {
    let Op::MoeSelect { top_k, .. } = case.op else {
        return Ok(());
    };
    let (scale, values): (f32, &[(usize, f32)]) = match &case.inputs[0].fill {
        Fill::Planted { scale, values } => (*scale, values),
        Fill::Uniform(scale) => (*scale, &[]),
        _ => return Ok(()),
    };
    let precision = Precision::F32.with_function_ulps(SEPARATED_FOR_ULPS);
    let e = inputs[0].desc.shape[1];
    let mut rows: Vec<Vec<f32>> = inputs[0]
        .to_f32()
        .chunks_exact(e)
        .map(<[f32]>::to_vec)
        .collect();
    let out = TensorDesc::contiguous(DType::I32, &[1, top_k]);
    for (t, row) in rows.iter_mut().enumerate() {
        let planted: Vec<usize> = values
            .iter()
            .filter(|(i, _)| i / e == t)
            .map(|(i, _)| i % e)
            .collect();
        for attempt in 0.. {
            let one = HostTensor::from_f32(DType::F32, &[1, e], row)?;
            let inputs1 = [one, inputs[1].clone()];
            match glmhal_ops::bounds::error_bounds(&case.op, &inputs1, &out, &precision) {
                Ok(_) => break,
                Err(undecidable) if attempt == 100 || planted.len() == row.len() => {
                    return Err(undecidable)
                }
                Err(_) => {}
            }
            for (i, v) in row.iter_mut().enumerate() {
                if !planted.contains(&i) {
                    *v = rng.uniform(-scale, scale);
                }
            }
        }
    }
    let all: Vec<f32> = rows.concat();
    inputs[0]
        .write_f32(&all)
        .map_err(|e| HalError::invalid(&case.id, format!("writing the redrawn logits: {e}")))
}
