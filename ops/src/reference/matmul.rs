//! mat_mul and batched_mat_mul.

use glmhal_hal::HostTensor;

pub(super) fn matmul(x: &HostTensor, w: &HostTensor, bias: Option<&HostTensor>) -> Vec<f64> {
    let (m, k) = (x.desc.shape[0], x.desc.shape[1]);
    let n = w.desc.shape[0];
    let (xs, ws) = (x.to_f64(), w.to_f64());
    let b = bias.map(|b| b.to_f64());
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        let xr = &xs[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &ws[j * k..(j + 1) * k];
            let mut acc = 0.0f64;
            for p in 0..k {
                acc += xr[p] * wr[p];
            }
            out[i * n + j] = acc + b.as_ref().map_or(0.0, |b| b[j]);
        }
    }
    out
}

pub(super) fn batched(a: &HostTensor, b: &HostTensor) -> Vec<f64> {
    let (batch, m, k) = (a.desc.shape[0], a.desc.shape[1], a.desc.shape[2]);
    let n = b.desc.shape[2];
    let (av, bv) = (a.to_f64(), b.to_f64());
    let mut out = vec![0.0; batch * m * n];
    for z in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f64;
                for p in 0..k {
                    acc += av[(z * m + i) * k + p] * bv[(z * k + p) * n + j];
                }
                out[(z * m + i) * n + j] = acc;
            }
        }
    }
    out
}
