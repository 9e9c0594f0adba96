//! Error a case forgives element by element before its NMSE is taken.
//!
//! A product with Q8_0 or Q4_0 weights may quantize its activations to
//! blocks of 32 int8 with a scale `d = max|x| / 127`, as llama.cpp does for
//! these weights: each activation then moves by a rounding error within
//! ±d/2, and an output `Σ_k w_k·x_k` by the sum of those errors times the
//! weights. Over a block's 32 values the errors behave as independent and
//! uniform (variance d²/12), so an output's error has a standard deviation
//! `σ = sqrt(Σ_b d_b²/12 · Σ_{k in b} w_k²)`; the allowance is [`SIGMAS`]
//! of them, and never more than the worst case `Σ_b d_b/2 · Σ_{k in b} |w_k|`.
//! NMSE alone cannot stand for that: on a case with one output the error
//! divided by a single reference value is as large as that value is small,
//! and about one such case in nine fails however correct the product. The
//! allowance is forgiven per element and NMSE measures what lies beyond it,
//! so an error the rounding cannot explain (a block left out of a 4096-long
//! product, say) still counts almost in full.

use glmhal_hal::{HostTensor, Op, QUANT_BLOCK};

/// Standard deviations of int8 rounding an output may be off by.
pub const SIGMAS: f64 = 5.0;

/// Per element of output 0 (logical order), what `op` on `inputs` may be
/// off by before the error counts; `None` for ops without an allowance.
pub fn for_op(op: &Op, inputs: &[HostTensor]) -> Option<Vec<f64>> {
    let Op::MatMul { .. } = op else { return None };
    let (x, w) = (inputs.first()?, inputs.get(1)?);
    if !w.desc.dtype.is_quantized() || x.desc.shape.len() != 2 || w.desc.shape.len() != 2 {
        return None;
    }
    let (m, k, n) = (x.desc.shape[0], x.desc.shape[1], w.desc.shape[0]);
    if k % QUANT_BLOCK != 0 || w.desc.shape[1] != k {
        return None;
    }
    let blocks = k / QUANT_BLOCK;
    // Per activation row and block, the int8 step d; per weight row and
    // block, Σ|w| and Σw².
    let steps: Vec<f64> = x
        .to_f64()
        .chunks_exact(QUANT_BLOCK)
        .map(|b| b.iter().fold(0.0f64, |a, v| a.max(v.abs())) / 127.0)
        .collect();
    let weights: Vec<(f64, f64)> = w
        .to_f64()
        .chunks_exact(QUANT_BLOCK)
        .map(|b| {
            (
                b.iter().map(|v| v.abs()).sum(),
                b.iter().map(|v| v * v).sum(),
            )
        })
        .collect();
    let mut allowed = Vec::with_capacity(m * n);
    for i in 0..m {
        let d = &steps[i * blocks..(i + 1) * blocks];
        for j in 0..n {
            let a = &weights[j * blocks..(j + 1) * blocks];
            let worst: f64 = d.iter().zip(a).map(|(d, (abs, _))| 0.5 * d * abs).sum();
            let variance: f64 = d.iter().zip(a).map(|(d, (_, sq))| d * d / 12.0 * sq).sum();
            allowed.push(worst.min(SIGMAS * variance.sqrt()));
        }
    }
    Some(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{quant, DType, TensorDesc};

    fn tensor(dtype: DType, shape: &[usize], values: &[f32]) -> HostTensor {
        let desc = TensorDesc::contiguous(dtype, shape);
        HostTensor::new(desc, quant::from_f32(dtype, values).unwrap()).unwrap()
    }

    #[test]
    fn int8_rounding_stays_inside_and_a_missing_block_does_not() {
        let (k, n) = (1024, 64);
        let mut rng = glmhal_hal::Rng::new(7);
        let x: Vec<f32> = (0..k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let w: Vec<f32> = (0..n * k).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let (xt, wt) = (
            tensor(DType::F32, &[1, k], &x),
            tensor(DType::Q4_0, &[n, k], &w),
        );
        let allowed = for_op(&Op::MatMul { bias: false }, &[xt, wt.clone()]).unwrap();
        assert_eq!(allowed.len(), n);
        // Activations rounded to int8 blocks (half away from zero).
        let rounded: Vec<f64> = x
            .chunks(QUANT_BLOCK)
            .flat_map(|b| {
                let d = b.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64 / 127.0;
                b.iter().map(move |v| (*v as f64 / d).round() * d)
            })
            .collect();
        let wq = wt.to_f64();
        let mut caught = 0;
        for (j, allow) in allowed.iter().enumerate() {
            let row = &wq[j * k..(j + 1) * k];
            let exact: f64 = row.iter().zip(&x).map(|(a, b)| a * *b as f64).sum();
            let int8: f64 = row.iter().zip(&rounded).map(|(a, b)| a * b).sum();
            assert!((exact - int8).abs() <= *allow, "row {j}");
            // One block of 32 left out: the error is that block's product.
            let missing: f64 = row[..32].iter().zip(&x).map(|(a, b)| a * *b as f64).sum();
            caught += usize::from(missing.abs() > *allow);
        }
        // It lies past the allowance for most outputs (each is forgiven
        // only its allowance, so the NMSE of such a product stays far over
        // the threshold).
        assert!(caught >= n * 3 / 4, "{caught} of {n}");
    }

    #[test]
    fn only_products_with_quantized_weights_have_one() {
        let x = tensor(DType::F32, &[1, 32], &[0.5; 32]);
        let f16 = tensor(DType::F16, &[1, 32], &[0.5; 32]);
        assert!(for_op(&Op::MatMul { bias: false }, &[x.clone(), f16]).is_none());
        assert!(for_op(&Op::Silu, &[x]).is_none());
    }
}
