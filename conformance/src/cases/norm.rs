//! Cases for rms_norm and layer_norm.

use glmhal_hal::{DType, Op};

use super::{dense, push, unit};
use crate::case::{Case, Fill, TensorSpec};

pub(crate) fn rms_norm(cases: &mut Vec<Case>) {
    let glm4_eps = 1.5625e-7;
    for x in DType::FLOATS {
        for (rows, h) in [(1, 1), (5, 7), (13, 33), (3, 4096), (7, 4097)] {
            let outs = if x == DType::F32 {
                vec![x]
            } else {
                vec![x, DType::F32]
            };
            for out in outs {
                push(
                    cases,
                    Op::RmsNorm { eps: 1e-5 },
                    vec![dense(x, &[rows, h]), dense(x, &[h])],
                    dense(out, &[rows, h]),
                    "",
                );
            }
        }
        push(
            cases,
            Op::RmsNorm { eps: glm4_eps },
            vec![
                TensorSpec::padded(x, &[2, 3, 128], 5, unit()),
                dense(DType::F32, &[128]),
            ],
            TensorSpec::padded(x, &[2, 3, 128], 2, unit()),
            "strided",
        );
        // Squares of these overflow f16: the sum must not be taken in f16.
        push(
            cases,
            Op::RmsNorm { eps: glm4_eps },
            vec![
                TensorSpec::contiguous(x, &[4, 4096], Fill::Uniform(300.0)),
                dense(x, &[4096]),
            ],
            dense(x, &[4, 4096]),
            "large-magnitude",
        );
    }
}

pub(crate) fn layer_norm(cases: &mut Vec<Case>) {
    for x in DType::FLOATS {
        for (rows, h) in [(1, 2), (5, 7), (13, 33), (3, 4097)] {
            let p = if x == DType::F32 { DType::F32 } else { x };
            push(
                cases,
                Op::LayerNorm { eps: 1e-5 },
                vec![dense(x, &[rows, h]), dense(p, &[h]), dense(p, &[h])],
                dense(x, &[rows, h]),
                "",
            );
        }
        push(
            cases,
            Op::LayerNorm { eps: 1e-6 },
            vec![
                TensorSpec::padded(x, &[4, 64], 7, unit()),
                dense(DType::F32, &[64]),
                dense(DType::F32, &[64]),
            ],
            dense(DType::F32, &[4, 64]),
            "strided",
        );
    }
}
