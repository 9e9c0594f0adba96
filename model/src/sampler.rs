//! Choosing the next token from logits: greedy, temperature, top-k, top-p,
//! repetition penalty, with a seed that makes runs reproducible.

use glmhal_hal::{HalError, Result, Rng};
use serde::Serialize;

/// Sampling settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sampling {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1: all).
    pub top_p: f32,
    /// Divide positive (multiply negative) logits of tokens already seen (1: off).
    pub repetition_penalty: f32,
    /// Seed of the random stream.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl Sampling {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(HalError::invalid("sampling", m));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top-p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!(
                "repetition penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        Ok(())
    }

    /// Whether this is plain greedy decoding (the device can pick the token).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0 && self.repetition_penalty == 1.0
    }
}

/// A sampler with its own random stream. Its working lists are kept from
/// token to token, so sampling allocates nothing once they have grown.
pub struct Sampler {
    settings: Sampling,
    rng: Rng,
    logits: Vec<f32>,
    order: Vec<usize>,
    probs: Vec<f64>,
}

impl Sampler {
    /// A sampler seeded from the settings.
    pub fn new(settings: Sampling) -> Self {
        Sampler {
            settings,
            rng: Rng::new(settings.seed),
            logits: Vec::new(),
            order: Vec::new(),
            probs: Vec::new(),
        }
    }

    /// Picks a token from `logits` given the tokens seen so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let s = self.settings;
        let Sampler {
            logits: l,
            order,
            probs,
            ..
        } = self;
        l.clear();
        l.extend_from_slice(logits);
        if s.repetition_penalty != 1.0 {
            for &t in history {
                if let Some(v) = l.get_mut(t as usize) {
                    *v = if *v > 0.0 {
                        *v / s.repetition_penalty
                    } else {
                        *v * s.repetition_penalty
                    };
                }
            }
        }
        if s.temperature == 0.0 {
            return argmax(l);
        }
        order.clear();
        order.extend(0..l.len());
        // Most likely first, the lower id first on ties (an unstable sort
        // sorts in place; the tie-break keeps the order deterministic).
        order.sort_unstable_by(|&a, &b| l[b].total_cmp(&l[a]).then(a.cmp(&b)));
        if s.top_k > 0 {
            order.truncate(s.top_k);
        }
        let max = l[order[0]];
        probs.clear();
        probs.extend(
            order
                .iter()
                .map(|&i| (((l[i] - max) / s.temperature) as f64).exp()),
        );
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let mut keep = probs.len();
        if s.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, p) in probs.iter().enumerate() {
                acc += p;
                if acc >= s.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
        }
        let kept: f64 = probs[..keep].iter().sum();
        let mut u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * kept;
        for (i, p) in probs[..keep].iter().enumerate() {
            if u < *p {
                return order[i] as u32;
            }
            u -= p;
        }
        order[keep - 1] as u32
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_penalty() {
        let mut s = Sampler::new(Sampling::default());
        assert_eq!(s.sample(&[0.1, 2.0, 1.9], &[]), 1);
        let mut p = Sampler::new(Sampling {
            repetition_penalty: 2.0,
            ..Sampling::default()
        });
        assert_eq!(p.sample(&[0.1, 2.0, 1.9], &[1]), 2);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_top_k() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32).collect();
        let set = Sampling {
            temperature: 1.0,
            top_k: 3,
            seed: 42,
            ..Sampling::default()
        };
        let run = || {
            let mut s = Sampler::new(set);
            (0..20)
                .map(|_| s.sample(&logits, &[]))
                .collect::<Vec<u32>>()
        };
        let (a, b) = (run(), run());
        assert_eq!(a, b);
        assert!(a.iter().all(|t| logits[*t as usize] == 6.0));
        let mut top_p = Sampler::new(Sampling {
            temperature: 1.0,
            top_p: 0.01,
            ..set
        });
        assert_eq!(top_p.sample(&[0.0, 10.0, 0.0], &[]), 1);
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(Sampling {
            top_p: 0.0,
            ..Sampling::default()
        }
        .validate()
        .is_err());
        assert!(Sampling {
            temperature: -1.0,
            ..Sampling::default()
        }
        .validate()
        .is_err());
        assert!(Sampling {
            repetition_penalty: 0.0,
            ..Sampling::default()
        }
        .validate()
        .is_err());
    }
}
