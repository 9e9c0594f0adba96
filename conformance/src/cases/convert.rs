//! Cases for cast and quantize.

use glmhal_hal::{DType, Op};

use super::{dense, push, unit};
use crate::case::{Case, Fill, TensorSpec};

pub(crate) fn cast(cases: &mut Vec<Case>) {
    for from in DType::WEIGHTS {
        for to in DType::FLOATS {
            let mut shapes = vec![vec![3, 64], vec![13, 4096]];
            if !from.is_quantized() {
                shapes.extend([vec![1, 1], vec![5, 7], vec![2, 3, 127]]);
            }
            for shape in shapes {
                push(
                    cases,
                    Op::Cast,
                    vec![dense(from, &shape)],
                    dense(to, &shape),
                    "",
                );
            }
            let pad = if from.is_quantized() { 32 } else { 5 };
            push(
                cases,
                Op::Cast,
                vec![TensorSpec::padded(from, &[4, 64], pad, unit())],
                TensorSpec::padded(to, &[4, 64], 2, unit()),
                "strided",
            );
        }
    }
    // Values beyond f16's range become +-inf; bf16 keeps them.
    for to in [DType::F16, DType::Bf16] {
        push(
            cases,
            Op::Cast,
            vec![TensorSpec::contiguous(
                DType::F32,
                &[4, 256],
                Fill::Uniform(1.0e5),
            )],
            dense(to, &[4, 256]),
            "large-magnitude",
        );
    }
}

pub(crate) fn quantize(cases: &mut Vec<Case>) {
    for from in DType::FLOATS {
        for to in [DType::Q8_0, DType::Q4_0] {
            for shape in [[1usize, 32], [5, 64], [13, 4096]] {
                push(
                    cases,
                    Op::Quantize,
                    vec![dense(from, &shape)],
                    TensorSpec::contiguous(to, &shape, Fill::Uniform(1.0)),
                    "",
                );
            }
            push(
                cases,
                Op::Quantize,
                vec![TensorSpec::padded(from, &[3, 96], 7, unit())],
                TensorSpec::padded(to, &[3, 96], 32, unit()),
                "strided",
            );
        }
    }
}
