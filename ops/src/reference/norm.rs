//! rms_norm and layer_norm.

use glmhal_hal::{quant::round_to, HostTensor};

pub(super) fn rms_norm(x: &HostTensor, w: &HostTensor, eps: f64) -> Vec<f64> {
    let h = x.desc.last_dim();
    let (xs, ws) = (x.to_f64(), w.to_f64());
    let mut out = Vec::with_capacity(xs.len());
    for row in xs.chunks_exact(h) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / h as f64;
        let r = 1.0 / (ms + eps).sqrt();
        // GLM casts the normalized value back to the activation dtype before the weight.
        out.extend(
            row.iter()
                .zip(&ws)
                .map(|(v, g)| round_to(x.desc.dtype, (v * r) as f32) as f64 * g),
        );
    }
    out
}

pub(super) fn layer_norm(x: &HostTensor, w: &HostTensor, b: &HostTensor, eps: f64) -> Vec<f64> {
    let h = x.desc.last_dim();
    let (xs, ws, bs) = (x.to_f64(), w.to_f64(), b.to_f64());
    let mut out = Vec::with_capacity(xs.len());
    for row in xs.chunks_exact(h) {
        let mean = row.iter().sum::<f64>() / h as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / h as f64;
        let r = 1.0 / (var + eps).sqrt();
        out.extend((0..h).map(|i| (row[i] - mean) * r * ws[i] + bs[i]));
    }
    out
}
