//! Cases for swiglu, silu, gelu, scale, add and mul.

use glmhal_hal::{DType, Op};

use super::{dense, push, unit};
use crate::case::{Case, Fill, TensorSpec};

pub(crate) fn activations(cases: &mut Vec<Case>) {
    for x in DType::FLOATS {
        // glm-4-9b's FFN is 13696 wide: the fused gate/up row is 27392.
        for (m, two_f) in [(1, 2), (5, 14), (13, 66), (3, 27392)] {
            push(
                cases,
                Op::SwiGlu,
                vec![dense(x, &[m, two_f])],
                dense(x, &[m, two_f / 2]),
                "",
            );
        }
        push(
            cases,
            Op::SwiGlu,
            vec![TensorSpec::padded(x, &[4, 256], 16, unit())],
            dense(DType::F32, &[4, 128]),
            "strided",
        );
        // GLM's attention scale, 1/√128, is not representable in f16 or f32.
        let scales = [
            Op::Scale { factor: -0.375 },
            Op::Scale {
                factor: 128f64.powf(-0.5),
            },
        ];
        for op in [Op::Silu, Op::Gelu].into_iter().chain(scales) {
            for shape in [&[1usize, 1][..], &[5, 7], &[13, 33], &[3, 4097], &[2, 3, 5]] {
                push(
                    cases,
                    op.clone(),
                    vec![dense(x, shape)],
                    dense(x, shape),
                    "",
                );
            }
            push(
                cases,
                op.clone(),
                vec![TensorSpec::padded(x, &[5, 33], 3, unit())],
                TensorSpec::padded(DType::F32, &[5, 33], 1, unit()),
                "strided",
            );
            push(
                cases,
                op.clone(),
                vec![TensorSpec::contiguous(x, &[2, 64], Fill::Uniform(20.0))],
                dense(DType::F32, &[2, 64]),
                "large-magnitude",
            );
        }
    }
}

pub(crate) fn binary(cases: &mut Vec<Case>) {
    let pairs: [(&[usize], &[usize]); 6] = [
        (&[1, 1], &[1, 1]),
        (&[5, 7], &[5, 7]),
        (&[13, 33], &[1, 33]),
        (&[7, 5], &[7, 1]),
        (&[3, 5, 7], &[1, 5, 1]),
        (&[2, 4097], &[1, 4097]),
    ];
    for op in [Op::Add, Op::Mul] {
        for a in DType::FLOATS {
            let mut bs = vec![a];
            if a != DType::F32 {
                bs.push(DType::F32);
            }
            for b in bs {
                for (sa, sb) in pairs {
                    push(
                        cases,
                        op.clone(),
                        vec![dense(a, sa), dense(b, sb)],
                        dense(a, sa),
                        "",
                    );
                }
                // The same shapes right after with other inputs: a kernel
                // that hands back its previous result fails here.
                let (sa, sb) = pairs[5];
                push(
                    cases,
                    op.clone(),
                    vec![dense(a, sa), dense(b, sb)],
                    dense(a, sa),
                    "same shapes again",
                );
            }
            push(
                cases,
                op.clone(),
                vec![
                    TensorSpec::padded(a, &[4, 32], 8, unit()),
                    TensorSpec::transposed(a, &[4, 32], unit()),
                ],
                TensorSpec::padded(a, &[4, 32], 4, unit()),
                "strided",
            );
            // Operands of different magnitudes: the result needs every bit
            // of the output's significand and is rounded (inputs drawn in
            // [-1, 1] share one grid, so their sums are often exact).
            push(
                cases,
                op.clone(),
                vec![
                    dense(a, &[9, 65]),
                    TensorSpec::contiguous(a, &[9, 65], Fill::Uniform(0.013)),
                ],
                dense(a, &[9, 65]),
                "mixed-magnitude",
            );
        }
    }
}
