//! Row reductions: softmax and argmax.

use glmhal_hal::HostTensor;

pub(super) fn softmax(x: &HostTensor, scale: f64, causal: bool) -> Vec<f64> {
    let (m, n) = (x.desc.shape[0], x.desc.shape[1]);
    let xs = x.to_f64();
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        let visible = if causal { i + n - m + 1 } else { n };
        let row = &xs[i * n..i * n + visible];
        let max = row
            .iter()
            .map(|v| v * scale)
            .fold(f64::NEG_INFINITY, f64::max);
        let denom: f64 = row.iter().map(|v| (v * scale - max).exp()).sum();
        for (j, v) in row.iter().enumerate() {
            out[i * n + j] = (v * scale - max).exp() / denom;
        }
    }
    out
}

pub(super) fn argmax(x: &HostTensor) -> Vec<f64> {
    let n = x.desc.shape[1];
    x.to_f64()
        .chunks_exact(n)
        .map(|row| {
            let mut best = 0;
            for (j, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = j;
                }
            }
            best as f64
        })
        .collect()
}
