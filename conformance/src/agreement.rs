//! Backend against backend: what users compare when they pick a vendor.
//!
//! Two backends that each stay within their bound of the exact value can
//! differ by at most the sum of their bounds, element by element. The ratio
//! `|a − b| / (bound_a + bound_b)` says how close two vendors come to that:
//! above 1, at least one of them is wrong.

use glmhal_hal::{OpKind, Precision};
use glmhal_ops::bounds::{rule, Rule};
use serde::Serialize;

use crate::case::Case;
use crate::runner::{Prepared, Status};

/// Two backends' outputs of one case, compared with each other.
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    /// Case id.
    pub case: String,
    /// Op kind.
    pub op: OpKind,
    /// Base seed of the inputs.
    pub seed: u64,
    /// One backend.
    pub a: String,
    /// The other.
    pub b: String,
    /// Largest `|a − b| / (bound_a + bound_b)` (for exact ops 0 when the
    /// outputs are identical, infinite when not).
    pub ratio: f64,
    /// Largest `|a − b|`.
    pub max_abs: f64,
}

impl Agreement {
    /// Whether the two can both be right.
    pub fn agrees(&self) -> bool {
        self.ratio <= 1.0
    }
}

/// One backend's run of a case, as [`agree`] needs it.
pub struct Ran<'a> {
    /// Backend selector.
    pub backend: &'a str,
    /// Its outcome class.
    pub status: Status,
    /// What it declared.
    pub precision: Option<Precision>,
    /// Output 0, decoded.
    pub values: Option<&'a [f64]>,
}

/// Every pair of backends that both produced output 0 of `case`.
pub fn agree(case: &Case, prepared: &Prepared, seed: u64, ran: &[Ran<'_>]) -> Vec<Agreement> {
    let mut out = Vec::new();
    for (i, a) in ran.iter().enumerate() {
        for b in &ran[i + 1..] {
            let (Some(va), Some(vb), Some(pa), Some(pb)) =
                (a.values, b.values, a.precision, b.precision)
            else {
                continue;
            };
            let exact_rule = rule(&case.op) == Rule::Exact;
            let bounds = if exact_rule {
                None
            } else {
                match (prepared.bounds(case, &pa), prepared.bounds(case, &pb)) {
                    (Ok(x), Ok(y)) => Some((x, y)),
                    _ => continue,
                }
            };
            let both_passed = a.status == Status::Pass && b.status == Status::Pass;
            let (mut ratio, mut max_abs) = (0.0f64, 0.0f64);
            for (k, (x, y)) in va.iter().zip(vb).enumerate() {
                if x == y {
                    continue;
                }
                let r = if !x.is_finite() || !y.is_finite() {
                    // Either may overflow near the largest finite value.
                    if both_passed {
                        1.0
                    } else {
                        f64::INFINITY
                    }
                } else {
                    let d = (x - y).abs();
                    max_abs = max_abs.max(d);
                    match &bounds {
                        None => f64::INFINITY,
                        Some((ba, bb)) => d / (ba[k] + bb[k]),
                    }
                };
                ratio = ratio.max(r);
            }
            out.push(Agreement {
                case: case.id.clone(),
                op: case.kind(),
                seed,
                a: a.backend.to_string(),
                b: b.backend.to_string(),
                ratio,
                max_abs,
            });
        }
    }
    out
}
