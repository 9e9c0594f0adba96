//! Comparing a backend's output with the reference, element by element.

use glmhal_hal::Arithmetic;
use glmhal_ops::bounds::Rule;
use serde::Serialize;

/// Error measures of one output against the reference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Errors {
    /// Largest `|out − exact| / bound` over the elements: at most 1 for a
    /// pass under a bound (0 when every element is exact; absent for exact
    /// ops, whose bound is equality).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_ratio: Option<f64>,
    /// The element where that ratio is reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst_element: Option<usize>,
    /// Its bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst_bound: Option<f64>,
    /// Σ(ref − out)² / Σ ref² over finite reference values (Σ(ref − out)² when the reference is all zero).
    pub nmse: f64,
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
    /// An infinity where the reference allows none, or of the wrong sign.
    Infinity {
        /// Element index.
        index: usize,
        /// Reference value.
        expected: f64,
        /// Backend value.
        got: f64,
    },
    /// An element lies outside its bound (or differs, for exact ops).
    OutOfBound {
        /// Element index.
        index: usize,
        /// Exact reference value.
        expected: f64,
        /// Backend value.
        got: f64,
        /// The bound it had to meet (0 for exact ops).
        bound: f64,
    },
    /// The lengths differ (a harness bug, reported rather than panicking).
    Length(usize, usize),
}

/// What a comparison judges against.
pub struct Expected<'a> {
    /// How the case is judged.
    pub rule: Rule,
    /// The exact reference values (f64, before rounding to the output).
    pub exact: &'a [f64],
    /// The reference rounded to the output dtype, as stored (for exact ops).
    pub rounded: &'a [f64],
    /// Per element, the bound (for bounded ops).
    pub bounds: &'a [f64],
    /// The output's float format, if it has one (for overflow).
    pub output: Option<Arithmetic>,
}

/// Compares `got` (decoded, logical order) with `expected`.
pub fn compare(expected: &Expected<'_>, got: &[f64]) -> (Errors, Option<Mismatch>) {
    let n = got.len();
    if expected.exact.len() != n
        || expected.rounded.len() != n
        || (expected.rule == Rule::Bounded && expected.bounds.len() != n)
    {
        return (
            Errors::default(),
            Some(Mismatch::Length(expected.exact.len(), n)),
        );
    }
    let amax = expected
        .exact
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let rel_floor = amax * 1e-6;
    let mut e = Errors {
        count: n,
        ..Errors::default()
    };
    let (mut num, mut den) = (0.0f64, 0.0f64);
    let mut first_bad = None;
    let mut worst: Option<(f64, usize)> = None;
    for (i, &b) in got.iter().enumerate() {
        let a = expected.exact[i];
        if b.is_nan() {
            first_bad.get_or_insert(Mismatch::NaN(i));
            continue;
        }
        if expected.rule == Rule::Exact {
            let want = expected.rounded[i];
            if want != b {
                first_bad.get_or_insert(Mismatch::OutOfBound {
                    index: i,
                    expected: want,
                    got: b,
                    bound: 0.0,
                });
            }
        } else {
            let bound = expected.bounds[i];
            let ratio = if b.is_infinite() || a.is_infinite() {
                if infinity_allowed(a, b, bound, expected.output) {
                    0.0
                } else {
                    first_bad.get_or_insert(Mismatch::Infinity {
                        index: i,
                        expected: a,
                        got: b,
                    });
                    f64::INFINITY
                }
            } else {
                let d = (a - b).abs();
                let ratio = if d == 0.0 { 0.0 } else { d / bound };
                if ratio.is_nan() || ratio > 1.0 {
                    first_bad.get_or_insert(Mismatch::OutOfBound {
                        index: i,
                        expected: a,
                        got: b,
                        bound,
                    });
                }
                ratio
            };
            if worst.is_none_or(|(r, _)| ratio > r) {
                worst = Some((ratio, i));
            }
        }
        if a.is_finite() && b.is_finite() {
            let d = (a - b).abs();
            num += d * d;
            den += a * a;
            e.max_abs = e.max_abs.max(d);
            if a.abs() >= rel_floor && a != 0.0 {
                e.max_rel = e.max_rel.max(d / a.abs());
            }
        }
    }
    e.nmse = if den > 0.0 { num / den } else { num };
    if let Some((ratio, i)) = worst {
        e.bound_ratio = Some(ratio);
        e.worst_element = Some(i);
        e.worst_bound = Some(expected.bounds[i]);
    }
    (e, first_bad)
}

/// Whether an infinity in the output or the reference is acceptable: the
/// same infinity, or an exact value close enough to the output's largest
/// finite value that an error within `bound` rounds to infinity (or, with
/// an infinite output, the other way).
fn infinity_allowed(exact: f64, got: f64, bound: f64, output: Option<Arithmetic>) -> bool {
    if exact == got {
        return true;
    }
    let Some(format) = output else { return false };
    let max = format.max_finite();
    if got.is_infinite() {
        exact.is_finite() && exact.signum() == got.signum() && exact.abs() + bound >= max
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounded<'a>(exact: &'a [f64], bounds: &'a [f64]) -> Expected<'a> {
        Expected {
            rule: Rule::Bounded,
            exact,
            rounded: exact,
            bounds,
            output: Some(Arithmetic::F16),
        }
    }

    #[test]
    fn elements_pass_within_their_bound_and_report_the_ratio() {
        let (e, bad) = compare(&bounded(&[1.0, 2.0], &[0.1, 0.1]), &[1.05, 2.0]);
        assert_eq!(bad, None);
        assert!((e.bound_ratio.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(e.worst_element, Some(0));
        let (e, bad) = compare(&bounded(&[1.0, 2.0], &[0.1, 0.01]), &[1.05, 2.02]);
        assert!(matches!(bad, Some(Mismatch::OutOfBound { index: 1, .. })));
        assert!((e.bound_ratio.unwrap() - 2.0).abs() < 1e-9);
        // A zero bound admits only the exact value.
        let (_, bad) = compare(&bounded(&[0.0], &[0.0]), &[0.0]);
        assert_eq!(bad, None);
        let (_, bad) = compare(&bounded(&[0.0], &[0.0]), &[1e-30]);
        assert!(bad.is_some());
    }

    #[test]
    fn nan_always_fails_and_infinities_need_overflow() {
        let (_, bad) = compare(&bounded(&[1.0], &[1.0]), &[f64::NAN]);
        assert_eq!(bad, Some(Mismatch::NaN(0)));
        let inf = f64::INFINITY;
        // Past f16's largest value: rounding to infinity is honest.
        assert_eq!(compare(&bounded(&[65520.0], &[16.0]), &[inf]).1, None);
        assert_eq!(compare(&bounded(&[65520.0], &[32.0]), &[65504.0]).1, None);
        assert!(compare(&bounded(&[65520.0], &[16.0]), &[-inf]).1.is_some());
        assert!(compare(&bounded(&[1000.0], &[16.0]), &[inf]).1.is_some());
        assert_eq!(compare(&bounded(&[inf], &[0.0]), &[inf]).1, None);
        assert!(matches!(
            compare(&bounded(&[1.0], &[1.0, 2.0]), &[1.0, 2.0]).1,
            Some(Mismatch::Length(1, 2))
        ));
    }

    #[test]
    fn exact_rule_compares_with_the_rounded_reference() {
        let exact = [1.0000001];
        let rounded = [1.0];
        let e = Expected {
            rule: Rule::Exact,
            exact: &exact,
            rounded: &rounded,
            bounds: &[],
            output: Some(Arithmetic::F16),
        };
        assert_eq!(compare(&e, &[1.0]).1, None);
        assert!(compare(&e, &[1.0009765625]).1.is_some());
        assert_eq!(compare(&e, &[1.0]).0.bound_ratio, None);
    }
}
