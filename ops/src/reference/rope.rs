//! rope: rotary position embedding on the first `rot` dims of each head.

use glmhal_hal::{HostTensor, RopeMode};

pub(super) fn rope(
    x: &HostTensor,
    positions: &[i32],
    rot: usize,
    theta: f64,
    mode: RopeMode,
) -> Vec<f64> {
    let (t, heads, d) = (x.desc.shape[0], x.desc.shape[1], x.desc.shape[2]);
    let mut v = x.to_f64();
    let half = rot / 2;
    for ti in 0..t {
        let pos = positions[ti] as f64;
        for h in 0..heads {
            let head = &mut v[(ti * heads + h) * d..(ti * heads + h + 1) * d];
            for i in 0..half {
                let angle = pos * theta.powf(-2.0 * i as f64 / rot as f64);
                let (s, c) = angle.sin_cos();
                let (a, b) = mode.pair(i, rot);
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x1 * c + x0 * s;
            }
        }
    }
    v
}
