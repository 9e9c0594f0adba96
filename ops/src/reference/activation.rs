//! Elementwise activations and swiglu.

use glmhal_hal::HostTensor;

pub(crate) fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

pub(crate) fn gelu(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

pub(super) fn map(x: &HostTensor, f: impl Fn(f64) -> f64) -> Vec<f64> {
    x.to_f64().into_iter().map(f).collect()
}

pub(super) fn swiglu(x: &HostTensor) -> Vec<f64> {
    let two_f = x.desc.last_dim();
    let f = two_f / 2;
    x.to_f64()
        .chunks_exact(two_f)
        .flat_map(|row| (0..f).map(move |i| silu(row[i]) * row[f + i]))
        .collect()
}
