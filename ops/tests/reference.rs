//! Hand-checked values for the reference implementation: the oracle itself is tested.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_hal::{DType, HostTensor, Op, RopeMode, TensorDesc};
use glmhal_ops::reference::execute;

fn f32t(shape: &[usize], v: &[f32]) -> HostTensor {
    HostTensor::from_f32(DType::F32, shape, v).unwrap()
}

fn run(op: Op, inputs: &[HostTensor], out_dtype: DType, out_shape: &[usize]) -> Vec<f32> {
    let mut out = vec![HostTensor::zeros(out_dtype, out_shape).unwrap()];
    execute(&op, inputs, &mut out).unwrap();
    out[0].to_f32()
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
    }
}

#[test]
fn matmul_with_bias_and_transposed_view() {
    let x = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let w = f32t(&[2, 3], &[1., 0., 0., 0., 1., 1.]);
    let b = f32t(&[2], &[0.5, -1.]);
    let y = run(
        Op::MatMul { bias: true },
        &[x.clone(), w, b],
        DType::F32,
        &[2, 2],
    );
    close(&y, &[1.5, 4., 4.5, 10.]);
    // A weight stored as [K,N] and passed as a transposed view gives the same answer.
    let wt = f32t(&[3, 2], &[1., 0., 0., 1., 0., 1.]);
    let view = HostTensor::new(wt.desc.transposed(0, 1), wt.data).unwrap();
    let y2 = run(Op::MatMul { bias: false }, &[x, view], DType::F32, &[2, 2]);
    close(&y2, &[1., 5., 4., 11.]);
}

#[test]
fn batched_matmul() {
    let a = f32t(&[2, 1, 2], &[1., 2., 3., 4.]);
    let b = f32t(&[2, 2, 1], &[1., 1., 2., 0.]);
    close(
        &run(Op::BatchedMatMul, &[a, b], DType::F32, &[2, 1, 1]),
        &[3., 6.],
    );
}

#[test]
fn rms_norm_casts_back_before_the_weight() {
    let x = f32t(&[1, 2], &[3., 4.]);
    let w = f32t(&[2], &[2., 1.]);
    let ms = (9. + 16.) / 2.0f64;
    let r = 1.0 / (ms + 1e-6).sqrt();
    let y = run(Op::RmsNorm { eps: 1e-6 }, &[x, w], DType::F32, &[1, 2]);
    close(&y, &[(3. * r * 2.) as f32, (4. * r) as f32]);
    // In bf16 the normalized value is rounded to bf16 before the weight multiply.
    let xb = HostTensor::from_f32(DType::Bf16, &[1, 2], &[3., 4.]).unwrap();
    let wb = f32t(&[2], &[3., 3.]);
    let yb = run(Op::RmsNorm { eps: 1e-6 }, &[xb, wb], DType::F32, &[1, 2]);
    let nb = half::bf16::from_f64(3. * r).to_f32();
    assert_eq!(yb[0], nb * 3.);
}

#[test]
fn layer_norm() {
    let x = f32t(&[1, 2], &[1., 3.]);
    let y = run(
        Op::LayerNorm { eps: 0.0 },
        &[x, f32t(&[2], &[1., 2.]), f32t(&[2], &[0., 1.])],
        DType::F32,
        &[1, 2],
    );
    close(&y, &[-1., 3.]);
}

#[test]
fn rope_modes_rotate_the_right_pairs() {
    // One head of 6 dims, rot 4, position 1, theta 1: inv_freq = [1, 1^-0.5 = 1].
    let x = f32t(&[1, 1, 6], &[1., 0., 0., 1., 7., 8.]);
    let pos = HostTensor::from_i32(&[1], &[1]).unwrap();
    let (s, c) = 1f32.sin_cos();
    let inter = Op::Rope {
        rot: 4,
        theta: 1.0,
        mode: RopeMode::Interleaved,
    };
    let y = run(inter, &[x.clone(), pos.clone()], DType::F32, &[1, 1, 6]);
    // pairs (0,1) and (2,3)
    close(&y, &[c, s, -s, c, 7., 8.]);
    let neox = Op::Rope {
        rot: 4,
        theta: 1.0,
        mode: RopeMode::Neox,
    };
    let y = run(neox, &[x, pos], DType::F32, &[1, 1, 6]);
    // pairs (0,2) and (1,3)
    close(&y, &[c, -s, s, c, 7., 8.]);
}

#[test]
fn attention_groups_heads_and_masks() {
    // 2 query heads share 1 kv head; 2 cached keys; one query at position 1 sees both.
    let q = f32t(&[1, 2, 1], &[1., 0.]);
    let k = f32t(&[2, 1, 1], &[0., 1.]);
    let v = f32t(&[2, 1, 1], &[10., 20.]);
    let op = Op::Attention {
        scale: 2.0,
        causal: true,
    };
    let y = run(
        op.clone(),
        &[q, k.clone(), v.clone()],
        DType::F32,
        &[1, 2, 1],
    );
    let p1 = (2f64.exp() / (1. + 2f64.exp())) as f32;
    close(&y, &[10. * (1. - p1) + 20. * p1, 15.]);
    // Two queries: the first (position 0) sees only the first key.
    let q2 = f32t(&[2, 1, 1], &[1., 1.]);
    let y = run(op, &[q2, k, v], DType::F32, &[2, 1, 1]);
    close(&y[..1], &[10.]);
}

#[test]
fn softmax_causal_and_argmax_ties() {
    let x = f32t(&[2, 3], &[0., 0., 5., 1., 1., 1.]);
    let y = run(
        Op::Softmax {
            scale: 1.0,
            causal: true,
        },
        std::slice::from_ref(&x),
        DType::F32,
        &[2, 3],
    );
    close(&y, &[0.5, 0.5, 0., 1. / 3., 1. / 3., 1. / 3.]);
    let mut out = vec![HostTensor::zeros(DType::I32, &[2]).unwrap()];
    execute(&Op::Argmax, &[x], &mut out).unwrap();
    assert_eq!(out[0].to_i32().unwrap(), vec![2, 0]);
}

#[test]
fn swiglu_gate_is_the_first_half() {
    let x = f32t(&[1, 4], &[1., -2., 3., 4.]);
    let silu = |v: f32| v / (1. + (-v).exp());
    close(
        &run(Op::SwiGlu, &[x], DType::F32, &[1, 2]),
        &[silu(1.) * 3., silu(-2.) * 4.],
    );
}

#[test]
fn broadcasting_add_and_mul() {
    let a = f32t(&[2, 2], &[1., 2., 3., 4.]);
    close(
        &run(
            Op::Add,
            &[a.clone(), f32t(&[1, 2], &[10., 20.])],
            DType::F32,
            &[2, 2],
        ),
        &[11., 22., 13., 24.],
    );
    close(
        &run(Op::Mul, &[a, f32t(&[2, 1], &[2., 3.])], DType::F32, &[2, 2]),
        &[2., 4., 9., 12.],
    );
}

#[test]
fn quantize_matches_the_ggml_codec() {
    let vals: Vec<f32> = (0..64)
        .map(|i| ((i * 37) % 64) as f32 / 16.0 - 2.0)
        .collect();
    for dt in [DType::Q8_0, DType::Q4_0] {
        let mut out = vec![HostTensor::zeros(dt, &[2, 32]).unwrap()];
        execute(&Op::Quantize, &[f32t(&[2, 32], &vals)], &mut out).unwrap();
        let codec = glmhal_hal::quant::from_f32(dt, &vals).unwrap();
        assert_eq!(out[0].data, codec, "{dt}");
    }
}

#[test]
fn get_rows_and_kv_write_check_indices() {
    let table = HostTensor::from_f32(DType::F16, &[3, 2], &[0., 1., 2., 3., 4., 5.]).unwrap();
    let ids = HostTensor::from_i32(&[2], &[2, 0]).unwrap();
    close(
        &run(Op::GetRows, &[table.clone(), ids], DType::F32, &[2, 2]),
        &[4., 5., 0., 1.],
    );
    let bad = HostTensor::from_i32(&[1], &[3]).unwrap();
    let mut out = vec![HostTensor::zeros(DType::F32, &[1, 2]).unwrap()];
    let e = execute(&Op::GetRows, &[table, bad], &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("id 3"), "{e}");

    let mut cache = vec![HostTensor::from_f32(DType::F16, &[3, 1, 2], &[9.; 6]).unwrap()];
    let rows = f32t(&[1, 1, 2], &[1., 2.]);
    execute(
        &Op::KvWrite,
        &[rows.clone(), HostTensor::from_i32(&[1], &[1]).unwrap()],
        &mut cache,
    )
    .unwrap();
    assert_eq!(cache[0].to_f32(), vec![9., 9., 1., 2., 9., 9.]);
    let e = execute(
        &Op::KvWrite,
        &[rows, HostTensor::from_i32(&[1], &[5]).unwrap()],
        &mut cache,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("outside the cache"), "{e}");
}

#[test]
fn outputs_write_only_their_view() {
    // Output rows padded to 3: the padding keeps its bytes.
    let desc = TensorDesc::strided(DType::F32, &[2, 2], &[3, 1], 0);
    let mut out = vec![HostTensor::new(desc, vec![0xEE; 6 * 4]).unwrap()];
    execute(
        &Op::Scale { factor: 2.0 },
        &[f32t(&[2, 2], &[1., 2., 3., 4.])],
        &mut out,
    )
    .unwrap();
    assert_eq!(out[0].to_f32(), vec![2., 4., 6., 8.]);
    assert_eq!(&out[0].data[8..12], &[0xEE; 4]);
}
