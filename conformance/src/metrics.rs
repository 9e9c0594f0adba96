//! Comparing a backend's output with the reference.

use serde::Serialize;

use crate::tolerance::Tolerance;

/// Error measures of one output against the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Errors {
    /// Σ(ref − out)² / Σ ref² over finite reference values (Σ(ref − out)² when the reference is all zero).
    pub nmse: f64,
    /// The same with each element's error less its allowance (never below
    /// 0), for the cases that have one (products with quantized weights;
    /// see [`crate::allowance`]): the value the threshold then applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nmse_beyond_allowance: Option<f64>,
    /// Largest |ref − out|.
    pub max_abs: f64,
    /// Largest |ref − out| / |ref| over values with |ref| ≥ 1e-6 · max |ref|.
    pub max_rel: f64,
    /// Elements compared.
    pub count: usize,
}

/// Why a comparison failed, beyond the numbers.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// The output has a NaN at this element.
    NaN(usize),
    /// An infinity differs (sign or presence) at this element.
    Infinity {
        /// Element index.
        index: usize,
        /// Reference value.
        expected: f64,
        /// Backend value.
        got: f64,
    },
    /// The error is over the threshold.
    OverThreshold,
    /// The lengths differ (a harness bug, reported rather than panicking).
    Length(usize, usize),
}

/// Compares `got` against `expected` (both decoded to f64, logical order).
pub fn compare(expected: &[f64], got: &[f64], tolerance: Tolerance) -> (Errors, Option<Mismatch>) {
    compare_allowing(expected, got, tolerance, &[])
}

/// [`compare`], forgiving element `i` an error of up to `allowance[i]` in
/// the NMSE (an empty `allowance` forgives nothing; exact comparisons
/// never forgive).
pub fn compare_allowing(
    expected: &[f64],
    got: &[f64],
    tolerance: Tolerance,
    allowance: &[f64],
) -> (Errors, Option<Mismatch>) {
    if expected.len() != got.len() || !(allowance.is_empty() || allowance.len() == got.len()) {
        return (
            Errors::default(),
            Some(Mismatch::Length(expected.len(), got.len())),
        );
    }
    let amax = expected
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let rel_floor = amax * 1e-6;
    let mut e = Errors {
        count: expected.len(),
        ..Errors::default()
    };
    let (mut num, mut num_beyond, mut den) = (0.0f64, 0.0f64, 0.0f64);
    let mut first_bad = None;
    for (i, (&a, &b)) in expected.iter().zip(got).enumerate() {
        if b.is_nan() {
            first_bad.get_or_insert(Mismatch::NaN(i));
            continue;
        }
        if a.is_infinite() || b.is_infinite() {
            if a != b {
                first_bad.get_or_insert(Mismatch::Infinity {
                    index: i,
                    expected: a,
                    got: b,
                });
            }
            continue;
        }
        let d = (a - b).abs();
        let beyond = allowance.get(i).map_or(d, |allowed| (d - allowed).max(0.0));
        num += d * d;
        num_beyond += beyond * beyond;
        den += a * a;
        e.max_abs = e.max_abs.max(d);
        if a.abs() >= rel_floor && a != 0.0 {
            e.max_rel = e.max_rel.max(d / a.abs());
        }
    }
    let normalized = |n: f64| if den > 0.0 { n / den } else { n };
    e.nmse = normalized(num);
    e.nmse_beyond_allowance = (!allowance.is_empty()).then(|| normalized(num_beyond));
    if let Some(bad) = first_bad {
        return (e, Some(bad));
    }
    let over = match tolerance {
        Tolerance::Exact => e.max_abs != 0.0,
        Tolerance::Nmse(t) => e.nmse_beyond_allowance.unwrap_or(e.nmse) > t,
    };
    (e, over.then_some(Mismatch::OverThreshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmse_and_thresholds() {
        let (e, bad) = compare(&[1.0, 2.0], &[1.0, 2.0], Tolerance::Exact);
        assert_eq!(bad, None);
        assert_eq!(e.nmse, 0.0);
        let (e, bad) = compare(&[3.0, 4.0], &[3.0, 4.5], Tolerance::Nmse(1e-3));
        assert!((e.nmse - 0.25 / 25.0).abs() < 1e-12);
        assert_eq!(e.max_abs, 0.5);
        assert_eq!(bad, Some(Mismatch::OverThreshold));
        let (_, bad) = compare(&[3.0, 4.0], &[3.0, 4.0001], Tolerance::Exact);
        assert_eq!(bad, Some(Mismatch::OverThreshold));
    }

    #[test]
    fn nan_always_fails_and_infinities_must_match() {
        let (_, bad) = compare(&[1.0], &[f64::NAN], Tolerance::Nmse(1.0));
        assert_eq!(bad, Some(Mismatch::NaN(0)));
        let inf = f64::INFINITY;
        assert_eq!(
            compare(&[inf, 1.0], &[inf, 1.0], Tolerance::Nmse(1e-9)).1,
            None
        );
        assert!(matches!(
            compare(&[inf], &[-inf], Tolerance::Nmse(1.0)).1,
            Some(Mismatch::Infinity { .. })
        ));
        assert!(matches!(
            compare(&[1.0], &[inf], Tolerance::Nmse(1.0)).1,
            Some(Mismatch::Infinity { .. })
        ));
        assert!(matches!(
            compare(&[1.0], &[1.0, 2.0], Tolerance::Exact).1,
            Some(Mismatch::Length(1, 2))
        ));
    }

    #[test]
    fn allowances_forgive_only_what_they_allow() {
        let t = Tolerance::Nmse(1e-6);
        // Within the allowance: nothing counts.
        let (e, bad) = compare_allowing(&[3.0, 4.0], &[3.1, 4.0], t, &[0.2, 0.0]);
        assert_eq!((e.nmse_beyond_allowance, bad), (Some(0.0), None));
        assert!(e.nmse > 1e-4, "the error itself is still reported");
        assert_eq!(e.max_abs, (3.1f64 - 3.0).abs());
        // Past it: the excess counts in full.
        let (e, bad) = compare_allowing(&[3.0, 4.0], &[3.5, 4.0], t, &[0.1, 0.0]);
        assert!((e.nmse_beyond_allowance.unwrap() - 0.16 / 25.0).abs() < 1e-12);
        assert_eq!(bad, Some(Mismatch::OverThreshold));
        // Exact comparisons and NaN ignore allowances.
        let (_, bad) = compare_allowing(&[3.0], &[3.1], Tolerance::Exact, &[1.0]);
        assert_eq!(bad, Some(Mismatch::OverThreshold));
        let (_, bad) = compare_allowing(&[3.0], &[f64::NAN], t, &[1.0]);
        assert_eq!(bad, Some(Mismatch::NaN(0)));
    }
}
