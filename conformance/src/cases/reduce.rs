//! Cases for softmax and argmax.

use glmhal_hal::{DType, Op};

use super::{dense, push, unit};
use crate::case::{Case, Fill, TensorSpec};

pub(crate) fn softmax(cases: &mut Vec<Case>) {
    for x in DType::FLOATS {
        for (m, n) in [(1, 1), (5, 7), (13, 33), (7, 4097)] {
            push(
                cases,
                Op::Softmax {
                    scale: 1.0,
                    causal: false,
                },
                vec![dense(x, &[m, n])],
                dense(x, &[m, n]),
                "",
            );
        }
        push(
            cases,
            Op::Softmax {
                scale: 0.125,
                causal: true,
            },
            vec![dense(x, &[32, 4096])],
            dense(DType::F32, &[32, 4096]),
            "",
        );
        push(
            cases,
            Op::Softmax {
                scale: 0.5,
                causal: true,
            },
            vec![TensorSpec::padded(x, &[5, 9], 4, unit())],
            TensorSpec::padded(x, &[5, 9], 1, unit()),
            "strided",
        );
        // exp() of these overflows anything unless the row maximum is subtracted first.
        push(
            cases,
            Op::Softmax {
                scale: 1.0,
                causal: false,
            },
            vec![TensorSpec::contiguous(x, &[4, 300], Fill::Uniform(1.0e4))],
            dense(DType::F32, &[4, 300]),
            "large-magnitude",
        );
    }
}

pub(crate) fn argmax(cases: &mut Vec<Case>) {
    for x in DType::FLOATS {
        for (m, n) in [(1, 1), (5, 7), (13, 4097), (4, 151552)] {
            push(
                cases,
                Op::Argmax,
                vec![dense(x, &[m, n])],
                dense(DType::I32, &[m]),
                "",
            );
        }
        push(
            cases,
            Op::Argmax,
            vec![TensorSpec::padded(x, &[3, 100], 28, unit())],
            dense(DType::I32, &[3]),
            "strided",
        );
    }
    // Few distinct values, so ties are common: the first maximum must win.
    push(
        cases,
        Op::Argmax,
        vec![TensorSpec::contiguous(
            DType::Bf16,
            &[8, 1000],
            Fill::Uniform(0.01),
        )],
        dense(DType::I32, &[8]),
        "ties",
    );
}
