use glmhal_hal::{ActivationQuant, Arithmetic, DType, HostTensor, Op, Precision, Rng};

use super::*;

fn tensor(dtype: DType, shape: &[usize], values: &[f32]) -> HostTensor {
    HostTensor::from_f32(dtype, shape, values).unwrap()
}

fn uniform(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-scale, scale)).collect()
}

/// `[1,k]·[n,k]ᵀ` with its bounds under `p`.
fn product(x: &[f32], w: &[f32], wtype: DType, p: &Precision) -> (Vec<f64>, Vec<f64>, HostTensor) {
    let k = x.len();
    let n = w.len() / k;
    let inputs = [tensor(DType::F32, &[1, k], x), tensor(wtype, &[n, k], w)];
    let outputs = [HostTensor::zeros(DType::F32, &[1, n]).unwrap()];
    let op = Op::MatMul { bias: false };
    let exact = crate::reference::values(&op, &inputs, &outputs).unwrap();
    let bounds = error_bounds(&op, &inputs, &outputs[0].desc, p).unwrap();
    (exact, bounds, inputs[1].clone())
}

/// Sums `terms` in f32 over `lanes` interleaved accumulators, then the lanes in order.
fn f32_sum(terms: impl Iterator<Item = f32>, lanes: usize) -> f32 {
    let mut acc = vec![0.0f32; lanes];
    for (i, t) in terms.enumerate() {
        acc[i % lanes] += t;
    }
    acc.iter().sum()
}

#[test]
fn f32_dot_products_in_any_order_stay_inside_and_bf16_inputs_do_not() {
    let mut rng = Rng::new(11);
    for k in [1, 7, 64, 1000, 4096] {
        let n = 64;
        let x = uniform(&mut rng, k, 1.0);
        let w = uniform(&mut rng, n * k, 1.0);
        let (exact, bounds, _) = product(&x, &w, DType::F32, &Precision::F32);
        let mut worst = 0.0f64;
        let mut bf16_outside = 0;
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            for lanes in [1, 8, 16, 64] {
                let got = f32_sum(x.iter().zip(row).map(|(a, b)| a * b), lanes) as f64;
                let ratio = (got - exact[j]).abs() / bounds[j];
                assert!(ratio <= 1.0, "k={k} lanes={lanes}: ratio {ratio}");
                worst = worst.max(ratio);
            }
            let bf16 = f32_sum(
                x.iter()
                    .zip(row)
                    .map(|(a, b)| half::bf16::from_f32(*a).to_f32() * b),
                16,
            ) as f64;
            bf16_outside += usize::from((bf16 - exact[j]).abs() > bounds[j]);
        }
        // Tight: an honest sum comes within a factor of 20 of its bound ...
        assert!(worst >= 0.05, "k={k}: worst ratio {worst}");
        // ... and activations rounded to bf16 land outside it.
        assert!(
            bf16_outside >= n / 2,
            "k={k}: bf16 outside at {bf16_outside}/{n}"
        );
    }
}

#[test]
fn declaring_bf16_inputs_covers_them() {
    let mut rng = Rng::new(5);
    let (k, n) = (512, 32);
    let x = uniform(&mut rng, k, 1.0);
    let w = uniform(&mut rng, n * k, 1.0);
    let p = Precision {
        inputs_rounded_to: Some(Arithmetic::Bf16),
        ..Precision::F32
    };
    let (exact, bounds, _) = product(&x, &w, DType::F32, &p);
    for j in 0..n {
        let row = &w[j * k..(j + 1) * k];
        let r = |v: f32| half::bf16::from_f32(v).to_f32();
        let got = f32_sum(x.iter().zip(row).map(|(a, b)| r(*a) * r(*b)), 8) as f64;
        assert!((got - exact[j]).abs() <= bounds[j], "{j}");
    }
}

#[test]
fn int8_activations_are_covered_only_when_declared() {
    let mut rng = Rng::new(7);
    let (k, n) = (1024, 64);
    let x = uniform(&mut rng, k, 1.0);
    let w = uniform(&mut rng, n * k, 1.0);
    let int8 = Precision::F32.with_activations(ActivationQuant::Int8Blocks);
    let (exact, bounds, wq) = product(&x, &w, DType::Q4_0, &int8);
    let (_, plain, _) = product(&x, &w, DType::Q4_0, &Precision::F32);
    let wq = wq.to_f64();
    let quantized = |bits: f64| -> Vec<f64> {
        x.chunks(32)
            .flat_map(|b| {
                let d = b.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / bits;
                b.iter().map(move |v| (*v as f64 / d).round() * d)
            })
            .collect()
    };
    let (q8, q5) = (quantized(127.0), quantized(15.0));
    let (mut undeclared, mut five_bit) = (0, 0);
    for j in 0..n {
        let row = &wq[j * k..(j + 1) * k];
        let dot = |xs: &[f64]| row.iter().zip(xs).map(|(a, b)| a * b).sum::<f64>();
        let got = dot(&q8);
        assert!((got - exact[j]).abs() <= bounds[j], "row {j}");
        undeclared += usize::from((got - exact[j]).abs() > plain[j]);
        five_bit += usize::from((dot(&q5) - exact[j]).abs() > bounds[j]);
    }
    assert!(undeclared >= n * 3 / 4, "{undeclared}");
    // Activations of about 5 bits err 8.5 times as much: some outputs of
    // every such product land outside, so the case fails.
    assert!(five_bit >= 2, "{five_bit}");
}

#[test]
fn correctly_rounded_ops_are_exact() {
    let mut rng = Rng::new(3);
    let a = uniform(&mut rng, 1000, 1.0);
    let b = uniform(&mut rng, 1000, 1.0);
    for out in [DType::F32, DType::F16, DType::Bf16] {
        let inputs = [
            tensor(DType::F32, &[1000], &a),
            tensor(DType::F32, &[1000], &b),
        ];
        let outputs = [HostTensor::zeros(out, &[1000]).unwrap()];
        let exact = crate::reference::values(&Op::Add, &inputs, &outputs).unwrap();
        let bounds = error_bounds(&Op::Add, &inputs, &outputs[0].desc, &Precision::F32).unwrap();
        let arith = Arithmetic::of(out).unwrap();
        for i in 0..1000 {
            let f32_sum = arith.round((a[i] + b[i]) as f64);
            assert!((f32_sum - exact[i]).abs() <= bounds[i], "{out} {i}");
            if out == DType::F32 {
                // Exactly half an ulp (plus the reference's own f64 slack).
                assert!(bounds[i] <= Arithmetic::F32.half_ulp(exact[i]) * (1.0 + 1e-7));
                // The neighbour of the correct result is outside.
                let next = f32::from_bits((f32_sum as f32).to_bits() + 1) as f64;
                assert!((next - exact[i]).abs() > bounds[i]);
            }
        }
    }
}

#[test]
fn f32_softmax_stays_inside_and_a_missing_term_does_not() {
    let mut rng = Rng::new(9);
    let n = 4096;
    let x = uniform(&mut rng, n, 8.0);
    let inputs = [tensor(DType::F32, &[1, n], &x)];
    let outputs = [HostTensor::zeros(DType::F32, &[1, n]).unwrap()];
    let op = Op::Softmax {
        scale: 0.7,
        causal: false,
    };
    let exact = crate::reference::values(&op, &inputs, &outputs).unwrap();
    let bounds = error_bounds(&op, &inputs, &outputs[0].desc, &Precision::F32).unwrap();
    let softmax = |skip: Option<usize>| -> Vec<f32> {
        let s: Vec<f32> = x.iter().map(|v| v * 0.7).collect();
        let max = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = s.iter().map(|v| (v - max).exp()).collect();
        let z: f32 = e
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, v)| v)
            .sum();
        e.iter().map(|v| v / z).collect()
    };
    let honest = softmax(None);
    let mut worst = 0.0f64;
    for i in 0..n {
        let ratio = (honest[i] as f64 - exact[i]).abs() / bounds[i];
        assert!(ratio <= 1.0, "{i}: {ratio}");
        worst = worst.max(ratio);
    }
    assert!(worst > 1e-2, "{worst}");
    let largest = (0..n).max_by(|a, b| x[*a].total_cmp(&x[*b])).unwrap();
    let missing = softmax(Some(largest));
    assert!((0..n).any(|i| (missing[i] as f64 - exact[i]).abs() > bounds[i]));
}

#[test]
fn quantize_allows_a_step_only_at_ties() {
    // 0.5 of a step exactly: a tie under Q8_0's rounding.
    let mut v = vec![0.0f32; 32];
    v[0] = 127.0;
    v[1] = 2.5;
    v[2] = 2.25;
    let x = tensor(DType::F32, &[1, 32], &v);
    let b = quantize_ties(&x, DType::Q8_0).unwrap();
    assert_eq!(b[1], 1.0);
    assert_eq!(b[2], 0.0);
    assert_eq!(b[0], 0.0);
}
