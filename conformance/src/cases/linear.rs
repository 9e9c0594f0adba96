//! Cases for get_rows, mat_mul and batched_mat_mul.

use glmhal_hal::{DType, Op};

use super::{dense, push, unit};
use crate::case::{Case, Fill, TensorSpec};

pub(crate) fn get_rows(cases: &mut Vec<Case>) {
    for table in DType::WEIGHTS {
        let mut shapes = vec![(13, 32, 5), (127, 64, 7), (4097, 128, 33)];
        if !table.is_quantized() {
            shapes.extend([(1, 1, 1), (7, 5, 3)]);
        }
        for (vocab, hidden, n) in shapes {
            let ids = TensorSpec::contiguous(DType::I32, &[n], Fill::Ids(vocab));
            push(
                cases,
                Op::GetRows,
                vec![dense(table, &[vocab, hidden]), ids],
                dense(DType::F32, &[n, hidden]),
                "",
            );
        }
        // A padded table (rows spaced by a whole block) read into an f16 output.
        let pad = if table.is_quantized() { 32 } else { 3 };
        let ids = TensorSpec::contiguous(DType::I32, &[9], Fill::Ids(33));
        let t = TensorSpec::padded(table, &[33, 64], pad, unit());
        push(
            cases,
            Op::GetRows,
            vec![t, ids],
            dense(DType::F16, &[9, 64]),
            "padded",
        );
    }
}

pub(crate) fn mat_mul(cases: &mut Vec<Case>) {
    let no_bias = Op::MatMul { bias: false };
    for x in DType::FLOATS {
        for w in DType::WEIGHTS {
            let mut shapes = vec![(1, 32, 1), (5, 64, 7), (13, 96, 33), (33, 128, 127)];
            if !w.is_quantized() {
                shapes.extend([(1, 1, 1), (5, 7, 13), (7, 13, 5), (3, 127, 33)]);
            }
            for (m, k, n) in shapes {
                push(
                    cases,
                    no_bias.clone(),
                    vec![dense(x, &[m, k]), dense(w, &[n, k])],
                    dense(x, &[m, n]),
                    "",
                );
            }
            // Bias, with an f32 output whatever x is.
            let bias = dense(DType::F32, &[7]);
            push(
                cases,
                Op::MatMul { bias: true },
                vec![dense(x, &[5, 64]), dense(w, &[7, 64]), bias],
                dense(DType::F32, &[5, 7]),
                "",
            );
            // Non-contiguous: x rows padded (a slice of a wider activation), w padded or transposed.
            let wv = if w.is_quantized() {
                TensorSpec::padded(w, &[33, 64], 32, unit())
            } else {
                TensorSpec::transposed(w, &[33, 64], unit())
            };
            let xv = TensorSpec::padded(x, &[5, 64], 11, unit());
            push(
                cases,
                no_bias.clone(),
                vec![xv, wv],
                TensorSpec::padded(DType::F32, &[5, 33], 3, unit()),
                "strided",
            );
            // The decode projection of a 4096-wide model.
            if x == DType::F32 {
                push(
                    cases,
                    no_bias.clone(),
                    vec![dense(x, &[1, 4096]), dense(w, &[4096, 4096])],
                    dense(DType::F32, &[1, 4096]),
                    "large-shape",
                );
            }
        }
    }
    // Prefill-sized GEMMs.
    for (x, w) in [
        (DType::F32, DType::F16),
        (DType::F32, DType::Q8_0),
        (DType::F32, DType::Q4_0),
        (DType::Bf16, DType::Bf16),
    ] {
        push(
            cases,
            no_bias.clone(),
            vec![dense(x, &[64, 2048]), dense(w, &[2048, 2048])],
            dense(DType::F32, &[64, 2048]),
            "large-shape",
        );
    }
    // Large magnitudes: many results overflow f16 and must be +-inf in an f16 output.
    let big = Fill::Uniform(64.0);
    push(
        cases,
        no_bias,
        vec![
            TensorSpec::contiguous(DType::F16, &[4, 4096], big.clone()),
            TensorSpec::contiguous(DType::F16, &[64, 4096], big),
        ],
        dense(DType::F16, &[4, 64]),
        "large-magnitude",
    );
}

pub(crate) fn batched_mat_mul(cases: &mut Vec<Case>) {
    let combos = [
        (DType::F32, DType::F32, DType::F32),
        (DType::F16, DType::F16, DType::F32),
        (DType::Bf16, DType::Bf16, DType::Bf16),
        (DType::F32, DType::F16, DType::F32),
        (DType::F16, DType::F16, DType::F16),
    ];
    for (a, b, o) in combos {
        for (batch, m, k, n) in [(1, 1, 1, 1), (2, 5, 7, 13), (3, 13, 33, 5), (4, 33, 127, 7)] {
            push(
                cases,
                Op::BatchedMatMul,
                vec![dense(a, &[batch, m, k]), dense(b, &[batch, k, n])],
                dense(o, &[batch, m, n]),
                "",
            );
        }
        // Attention-like: scores of 16 heads over 300 cached keys, keys stored [S, D] and read transposed.
        push(
            cases,
            Op::BatchedMatMul,
            vec![
                TensorSpec::padded(a, &[16, 1, 128], 16, unit()),
                TensorSpec::transposed(b, &[16, 128, 300], unit()),
            ],
            dense(o, &[16, 1, 300]),
            "transposed",
        );
    }
}
