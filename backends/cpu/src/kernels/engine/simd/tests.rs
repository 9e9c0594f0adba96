use super::*;
use glmhal_hal::{quant, Rng};

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

#[test]
fn a_cap_is_a_ceiling_on_what_the_cpu_has() {
    let detected = Isa::detected();
    assert_eq!(level_under(None), detected);
    assert_eq!(level_under(Some(CpuIsa::Portable)), Isa::Portable);
    assert_eq!(level_under(Some(CpuIsa::Avx512)), detected);
    assert!(level_under(Some(CpuIsa::Avx2)) <= Isa::Avx2);
    assert!(Isa::Avx512.has_avx2() && Isa::Avx2.has_avx2() && !Isa::Portable.has_avx2());
}

#[test]
fn the_process_settings_refuse_a_second_choice() {
    // Nothing else in this test binary configures: the test options hold.
    let options = &glmhal_conformance::testing::test_options().cpu;
    assert_eq!(configure(options.isa, options.activations), Ok(()));
    assert_eq!(activation_bits(), options.activations);
    let other = ActivationBits::ALL
        .into_iter()
        .find(|b| *b != options.activations)
        .unwrap();
    let refused = configure(options.isa, other).unwrap_err();
    assert!(
        refused.contains(options.activations.name()) && refused.contains(other.name()),
        "{refused}"
    );
}

#[test]
fn silu_mul_matches_the_exact_function() {
    // Every magnitude from tiny to past the clamp, both signs, and a tail.
    let mut gate: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.25).collect();
    gate.extend([1e-30, -1e-30, 0.0, -0.0, 88.0, -88.0, 1e4, -1e4, 3.0]);
    let up: Vec<f32> = (0..gate.len())
        .map(|i| 1.0 + (i % 7) as f32 * 0.5)
        .collect();
    let mut out = vec![f32::NAN; gate.len()];
    silu_mul(&gate, &up, &mut out);
    for ((g, u), o) in gate.iter().zip(&up).zip(&out) {
        let (g, u) = (*g as f64, *u as f64);
        let want = g / (1.0 + (-g).exp()) * u;
        let err = (*o as f64 - want).abs();
        // Relative to the value; below 1e-30 (silu of large negative
        // inputs, where e^−x is clamped) absolute.
        assert!(
            err <= 4.0 * f32::EPSILON as f64 * want.abs() + 1e-30,
            "silu({g})·{u}: {o} vs {want}"
        );
    }
    let mut nan = [0.0f32; 8];
    silu_mul(&[f32::NAN; 8], &[1.0; 8], &mut nan);
    assert!(nan.iter().all(|v| v.is_nan()), "a NaN stays NaN");
}

#[test]
fn vector_quantization_matches_the_plain_one_bit_for_bit() {
    // Exact ties (the scale is 1), NaN, ±∞, zeros, a scale too small
    // to invert (1/d = ∞), then random blocks of many magnitudes.
    let mut blocks: Vec<[f32; QUANT_BLOCK]> = Vec::new();
    let mut ties = [0.0f32; QUANT_BLOCK];
    for (i, v) in ties.iter_mut().enumerate() {
        *v = (i as f32 - 16.0) * 2.0 + 0.5;
    }
    ties[0] = 32767.0;
    ties[1] = -32766.5;
    blocks.push(ties);
    let mut special = [1.0f32; QUANT_BLOCK];
    special[3] = f32::NAN;
    blocks.push(special);
    special[5] = f32::INFINITY;
    special[6] = f32::NEG_INFINITY;
    blocks.push(special);
    blocks.push([0.0; QUANT_BLOCK]);
    blocks.push([1e-40; QUANT_BLOCK]);
    let mut rng = Rng::new(3);
    for scale in [1e-30f32, 1e-3, 1.0, 7.0, 1e4, 3e38] {
        let mut b = [0.0f32; QUANT_BLOCK];
        b.iter_mut()
            .for_each(|v| *v = scale * rng.uniform(-1.0, 1.0));
        blocks.push(b);
    }
    let x: Vec<f32> = blocks.concat();
    let n = x.len() / QUANT_BLOCK;
    /// The plain blocks and the ones `quantize_into` makes at this level.
    fn both<T: QuantValue + std::fmt::Debug + PartialEq>(x: &[f32], n: usize) -> Vec<T> {
        let plain = {
            let (mut q, mut s, mut o) = (
                vec![T::default(); x.len()],
                vec![0.0f32; n],
                vec![0.0f32; n],
            );
            quantize_blocks(x, &mut q, &mut s, &mut o);
            (q, s.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), o)
        };
        let (mut q, mut s, mut o) = (
            vec![T::default(); x.len()],
            vec![0.0f32; n],
            vec![0.0f32; n],
        );
        quantize_into(x, &mut q, &mut s, &mut o);
        let bits: Vec<u32> = s.iter().map(|v| v.to_bits()).collect();
        assert_eq!(q, plain.0, "values ({})", isa().name());
        assert_eq!(bits, plain.1, "scales");
        assert_eq!(o, plain.2, "sums");
        // A block with a NaN or an infinity: zeros and a NaN scale.
        for b in 1..3 {
            assert!(
                s[b].is_nan() && q[b * QUANT_BLOCK..][..QUANT_BLOCK] == [T::default(); QUANT_BLOCK]
            );
        }
        q
    }
    let wide = both::<i16>(&x, n);
    // 0.5 and 2.5 go to 1 and 3 (ties to even would give 0 and 2).
    assert_eq!(&wide[16..18], &[1, 3], "ties round away from zero");
    assert_eq!(&wide[..2], &[32767, -32767]);
    let narrow = both::<i8>(&x, n);
    assert!(narrow.iter().all(|v| *v != i8::MIN), "symmetric: ±127");
    // The row keeps Σq as −c·Σq, and exactly one precision.
    let mut row = QuantizedRow::default();
    row.quantize(&x, DType::Q4_0, ActivationBits::Int16, false);
    assert!(row.bytes.is_empty() && row.values.len() == x.len());
    let sums: Vec<f32> = wide
        .chunks(QUANT_BLOCK)
        .map(|b| -8.0 * b.iter().map(|v| *v as i32).sum::<i32>() as f32)
        .collect();
    assert_eq!(&row.offsets[..], &sums[..]);
    row.quantize(&x, DType::Q8_0, ActivationBits::Int8, false);
    assert!(row.values.is_empty() && row.bytes.len() == x.len());
    // Alone, at the AVX-512 level, the row is laid out in step with the weights.
    row.quantize(&x, DType::Q8_0, ActivationBits::Int8, true);
    let laid_out = int8::WeightLayout::new(DType::Q8_0, x.len() / QUANT_BLOCK);
    let bytes = if int8::in_weight_layout(DType::Q8_0) {
        laid_out.planes * laid_out.plane_bytes
    } else {
        x.len()
    };
    assert!(row.values.is_empty() && row.bytes.len() == bytes);
    assert_eq!(
        row.lane_scales.is_empty(),
        !int8::in_weight_layout(DType::Q8_0)
    );
}

#[test]
fn every_dot_matches_a_plain_loop_for_every_tile_size() {
    // Block counts below, at and past the sixteen-block groups, with
    // tails; 43 blocks: a whole period of the weight layout and a rest.
    for n in [32usize, 96, 320, 672, 1000, 1003, 1376, 4096] {
        // Blocks of different magnitudes (1 to 7 times), so a block
        // scaled by another block's scale is caught.
        let w: Vec<f32> = random(n, 1)
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1 + (i / QUANT_BLOCK) % 7) as f32)
            .collect();
        let xs: Vec<Vec<f32>> = (0..TILE as u64).map(|s| random(n, 10 + s)).collect();
        for rows in 1..=TILE {
            let x: Vec<&[f32]> = xs[..rows].iter().map(|v| &v[..]).collect();
            let exact: Vec<f64> = x
                .iter()
                .map(|x| w.iter().zip(*x).map(|(a, b)| *a as f64 * *b as f64).sum())
                .collect();
            for (dtype, tol) in [(DType::F32, 1e-4), (DType::F16, 2e-2), (DType::Bf16, 1e-1)] {
                let bytes = quant::from_f32(dtype, &w).unwrap();
                let mut fast = vec![0.0f32; n];
                to_f32(dtype, &bytes, &mut fast);
                assert_eq!(fast, quant::to_f32(dtype, &bytes, n).unwrap(), "{dtype}");
                let mut out = [0.0f32; TILE];
                dot_rows(dtype, &bytes, &x, &mut out);
                for (got, want) in out.iter().zip(&exact) {
                    assert!(
                        (*got as f64 - want).abs() <= tol * (1.0 + want.abs()),
                        "{dtype} n={n} rows={rows}: {got} vs {want}"
                    );
                }
            }
            if n % QUANT_BLOCK != 0 {
                continue;
            }
            // A row alone in its tile too (its own layout at some levels).
            let alone: &[bool] = if rows == 1 { &[false, true] } else { &[false] };
            for (dtype, bits, alone) in [DType::Q8_0, DType::Q4_0]
                .into_iter()
                .flat_map(|d| [(d, ActivationBits::Int8), (d, ActivationBits::Int16)])
                .flat_map(|(d, b)| alone.iter().map(move |a| (d, b, *a)))
            {
                let quantized: Vec<QuantizedRow> = x
                    .iter()
                    .map(|x| {
                        let mut q = QuantizedRow::default();
                        q.quantize(x, dtype, bits, alone);
                        q
                    })
                    .collect();
                let qrefs: Vec<&QuantizedRow> = quantized.iter().collect();
                // Three weight rows (w, w reversed, w halved), each
                // followed by one unused block of NaN scales and
                // nonzero weights: a stride past the row, whose bytes
                // must not enter the products.
                let row_bytes = dtype.bytes_for(n);
                let stride = row_bytes + dtype.block_bytes();
                let mut bytes = vec![0xffu8; 3 * stride];
                let mut deq = Vec::new();
                let reversed: Vec<f32> = w.iter().rev().copied().collect();
                let halved: Vec<f32> = w.iter().map(|v| 0.5 * v).collect();
                for (i, row) in [&w, &reversed, &halved].into_iter().enumerate() {
                    let packed = quant::from_f32(dtype, row).unwrap();
                    bytes[i * stride..i * stride + row_bytes].copy_from_slice(&packed);
                    deq.push(quant::to_f32(dtype, &packed, n).unwrap());
                    let mut fast = vec![0.0f32; n];
                    to_f32(dtype, &packed, &mut fast);
                    assert_eq!(fast, deq[i], "{dtype} n={n}: to_f32");
                }
                let weights = WeightRows {
                    bytes: &bytes,
                    stride,
                    count: 3,
                };
                let out_stride = TILE + 1;
                let mut out = vec![f32::NAN; 3 * out_stride];
                dot_rows_quantized(dtype, &weights, &qrefs, &mut out, out_stride);
                for (i, deq) in deq.iter().enumerate() {
                    for (r, x) in x.iter().enumerate() {
                        // Against the dequantized weights and the f32
                        // activations: off by at most each activation's
                        // rounding, half its block's step, per weight.
                        let want: f64 =
                            deq.iter().zip(*x).map(|(a, b)| *a as f64 * *b as f64).sum();
                        let rounding: f64 = deq
                            .chunks(QUANT_BLOCK)
                            .zip(quantized[r].scales.iter())
                            .map(|(w, d)| {
                                0.5 * *d as f64 * w.iter().map(|v| v.abs() as f64).sum::<f64>()
                            })
                            .sum();
                        let got = out[i * out_stride + r];
                        assert!(
                            (got as f64 - want).abs() <= rounding + 1e-3 * (1.0 + want.abs()),
                            "{dtype} {bits:?} n={n} rows={rows} alone={alone} weight row {i}: {got} vs {want}"
                        );
                    }
                    // Nothing written past the activation rows.
                    assert!(out[i * out_stride + x.len()..(i + 1) * out_stride]
                        .iter()
                        .all(|v| v.is_nan()));
                }
            }
        }
    }
}
