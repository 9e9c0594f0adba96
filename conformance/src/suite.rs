//! Selecting cases and running them on a set of backends.

use glmhal_hal::{Backend, DType, OpKind};
use glmhal_ops::bounds::rule;
use serde::Serialize;

use crate::agreement::{agree, Agreement, Ran};
use crate::case::Case;
use crate::runner::{prepare, run_case, Outcome, Status};

/// Default base seed (ASCII "glmhal").
pub const DEFAULT_SEED: u64 = 0x676C_6D68_616C;

/// Which cases to run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Filter {
    /// Only these ops (all when empty).
    pub ops: Vec<OpKind>,
    /// Only cases with a tensor of one of these dtypes (all when empty).
    pub dtypes: Vec<DType>,
    /// Leave out cases with a tensor of one of these dtypes (a device
    /// without bf16, say).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub without_dtypes: Vec<DType>,
    /// Leave out the cases of these ops (a backend that has no kernel for
    /// them yet, run with `--require-all` for everything else).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub without_ops: Vec<OpKind>,
    /// Leave out the large shapes (4096² matmuls, attention over 4096 keys and more).
    pub skip_large: bool,
}

impl Filter {
    /// Whether a case passes the filter.
    pub fn admits(&self, case: &Case) -> bool {
        (self.ops.is_empty() || self.ops.contains(&case.kind()))
            && !self.without_ops.contains(&case.kind())
            && (self.dtypes.is_empty() || case.dtypes().iter().any(|d| self.dtypes.contains(d)))
            && !case
                .dtypes()
                .iter()
                .any(|d| self.without_dtypes.contains(d))
            && !(self.skip_large && case.large)
    }

    /// The admitted cases, in catalogue order.
    pub fn select(&self) -> Vec<Case> {
        crate::cases::all_cases()
            .into_iter()
            .filter(|c| self.admits(c))
            .collect()
    }
}

/// One case on one backend.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// The backend selector (`cpu`, `cuda:1`).
    pub backend: String,
    /// Case id.
    pub case: String,
    /// Op kind.
    pub op: OpKind,
    /// Dtypes of its tensors.
    pub dtypes: Vec<DType>,
    /// Whether it is one of the large shapes.
    pub large: bool,
    /// The base seed of its inputs.
    pub seed: u64,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl CaseResult {
    /// The case's dtype class (`f32+q4_0`), for tables per op and dtype.
    pub fn dtype_class(&self) -> String {
        let names: Vec<&str> = self.dtypes.iter().map(|d| d.name()).collect();
        names.join("+")
    }
}

/// A backend under test: its selector and the opened device.
pub struct Target<'a> {
    /// What the user typed (`cpu`, `wgpu:1`).
    pub selector: String,
    /// The device.
    pub backend: &'a dyn Backend,
}

/// Progress of a run, for progress bars.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Cases finished (on every backend, over every seed).
    pub done: usize,
    /// Cases in the run (times seeds).
    pub total: usize,
    /// The case just finished.
    pub case: &'a Case,
}

/// Everything a run measured.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Every case on every backend, for every seed.
    pub results: Vec<CaseResult>,
    /// Every pair of backends that both ran a case.
    pub agreement: Vec<Agreement>,
}

/// Runs every case on every target, once per seed. The reference runs once
/// per case and seed; each backend pair that ran a case is compared.
pub fn run(
    cases: &[Case],
    targets: &[Target<'_>],
    seeds: &[u64],
    progress: &mut dyn FnMut(Progress<'_>),
) -> Run {
    let mut out = Run::default();
    let total = cases.len() * seeds.len();
    let mut done = 0;
    for &seed in seeds {
        for case in cases {
            run_one(case, targets, seed, &mut out);
            done += 1;
            progress(Progress { done, total, case });
        }
    }
    out
}

fn run_one(case: &Case, targets: &[Target<'_>], seed: u64, out: &mut Run) {
    let prepared = prepare(case, seed);
    let mut ran = Vec::with_capacity(targets.len());
    for t in targets {
        let (outcome, values) = match &prepared {
            Ok(p) => {
                let r = run_case(t.backend, case, p);
                (r.outcome, r.values)
            }
            Err(e) => (
                Outcome::new(
                    Status::Error,
                    rule(&case.op),
                    format!("the reference could not run this case: {e}"),
                ),
                None,
            ),
        };
        ran.push((outcome.status, outcome.precision, values));
        out.results.push(CaseResult {
            backend: t.selector.clone(),
            case: case.id.clone(),
            op: case.kind(),
            dtypes: case.dtypes(),
            large: case.large,
            seed,
            outcome,
        });
    }
    if let Ok(p) = &prepared {
        let views: Vec<Ran<'_>> = targets
            .iter()
            .zip(&ran)
            .map(|(t, (status, precision, values))| Ran {
                backend: &t.selector,
                status: *status,
                precision: *precision,
                values: values.as_deref(),
            })
            .collect();
        out.agreement.extend(agree(case, p, seed, &views));
    }
}

/// Whether any result is a failure or an error.
pub fn any_failed(results: &[CaseResult]) -> bool {
    results
        .iter()
        .any(|r| matches!(r.outcome.status, Status::Fail | Status::Error))
}
