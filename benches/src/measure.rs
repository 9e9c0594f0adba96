//! Timing that settles: warm up, then repeat until the spread is small (or
//! the budget runs out), and report the median and the spread.

use std::time::Instant;

use glmhal_hal::Result;
use serde::{Deserialize, Serialize};

/// How long to measure one thing.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Untimed runs first (compilation, caches, clocks).
    pub warmup: usize,
    /// Timed runs at least.
    pub min_samples: usize,
    /// Timed runs at most.
    pub max_samples: usize,
    /// Stop adding samples after this many seconds of timed runs.
    pub max_seconds: f64,
    /// Stop once the relative interquartile spread is at most this.
    pub target_spread: f64,
}

impl Budget {
    /// Careful numbers: the default of `glmhal bench`.
    pub const THOROUGH: Budget = Budget {
        warmup: 2,
        min_samples: 7,
        max_samples: 50,
        max_seconds: 3.0,
        target_spread: 0.03,
    };
    /// Quick numbers for CI and smoke runs.
    pub const QUICK: Budget = Budget {
        warmup: 1,
        min_samples: 5,
        max_samples: 15,
        max_seconds: 1.0,
        target_spread: 0.05,
    };
}

/// What repeated timings of one thing came to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Median seconds per run.
    pub median_s: f64,
    /// Interquartile range over the median (0.02 = 2%).
    pub spread: f64,
    /// Fastest run, seconds.
    pub min_s: f64,
    /// Slowest run, seconds.
    pub max_s: f64,
    /// Timed runs.
    pub samples: usize,
}

impl Stats {
    /// Statistics of `times` (seconds; at least one).
    pub fn of(times: &[f64]) -> Stats {
        let mut t = times.to_vec();
        t.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let x = p * (t.len() - 1) as f64;
            let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
            t[lo] + (t[hi] - t[lo]) * (x - lo as f64)
        };
        let median = q(0.5);
        Stats {
            median_s: median,
            spread: if median > 0.0 {
                (q(0.75) - q(0.25)) / median
            } else {
                0.0
            },
            min_s: t[0],
            max_s: t[t.len() - 1],
            samples: t.len(),
        }
    }
}

/// Times `run` (which must finish its work, synchronizing the device) within `budget`.
pub fn measure(budget: Budget, mut run: impl FnMut() -> Result<()>) -> Result<Stats> {
    for _ in 0..budget.warmup {
        run()?;
    }
    let mut times = Vec::new();
    let started = Instant::now();
    loop {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64());
        let n = times.len();
        if n >= budget.max_samples {
            break;
        }
        if n >= budget.min_samples
            && (Stats::of(&times).spread <= budget.target_spread
                || started.elapsed().as_secs_f64() >= budget.max_seconds)
        {
            break;
        }
    }
    Ok(Stats::of(&times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0, 5.0]);
        assert_eq!(s.median_s, 3.0);
        assert_eq!(s.spread, (4.0 - 2.0) / 3.0);
        assert_eq!((s.min_s, s.max_s, s.samples), (1.0, 5.0, 5));
    }

    #[test]
    fn stops_within_the_budget() {
        let mut calls = 0;
        let s = measure(Budget::QUICK, || {
            calls += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.samples >= Budget::QUICK.min_samples && s.samples <= Budget::QUICK.max_samples);
        assert_eq!(calls, s.samples + Budget::QUICK.warmup);
    }
}
