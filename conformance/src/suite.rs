//! Selecting cases and running them on a set of backends.

use glmhal_hal::{Backend, DType, OpKind};
use serde::Serialize;

use crate::case::Case;
use crate::runner::{prepare, run_case, Outcome, Status};
use crate::tolerance::Tolerance;

/// Default base seed (ASCII "glmhal").
pub const DEFAULT_SEED: u64 = 0x676C_6D68_616C;

/// Which cases to run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Filter {
    /// Only these ops (all when empty).
    pub ops: Vec<OpKind>,
    /// Only cases with a tensor of one of these dtypes (all when empty).
    pub dtypes: Vec<DType>,
    /// Leave out the large shapes (4096² matmuls, 4096-key attention).
    pub skip_large: bool,
}

impl Filter {
    /// Whether a case passes the filter.
    pub fn admits(&self, case: &Case) -> bool {
        (self.ops.is_empty() || self.ops.contains(&case.kind()))
            && (self.dtypes.is_empty() || case.dtypes().iter().any(|d| self.dtypes.contains(d)))
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
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
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
    /// Cases finished (on every backend).
    pub done: usize,
    /// Cases in the run.
    pub total: usize,
    /// The case just finished.
    pub case: &'a Case,
}

/// Runs every case on every target. The reference runs once per case.
pub fn run(
    cases: &[Case],
    targets: &[Target<'_>],
    seed: u64,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Vec<CaseResult> {
    let mut results = Vec::with_capacity(cases.len() * targets.len());
    for (i, case) in cases.iter().enumerate() {
        let tolerance = crate::tolerance::for_case(case.kind(), &case.dtypes());
        let prepared = prepare(case, seed);
        for t in targets {
            let outcome = match &prepared {
                Ok(p) => run_case(t.backend, case, p),
                Err(e) => Outcome {
                    status: Status::Error,
                    tolerance,
                    errors: None,
                    detail: Some(format!("the reference could not run this case: {e}")),
                    elapsed_ms: 0.0,
                },
            };
            results.push(CaseResult {
                backend: t.selector.clone(),
                case: case.id.clone(),
                op: case.kind(),
                dtypes: case.dtypes(),
                large: case.large,
                outcome,
            });
        }
        progress(Progress {
            done: i + 1,
            total: cases.len(),
            case,
        });
    }
    results
}

/// Whether any result is a failure or an error.
pub fn any_failed(results: &[CaseResult]) -> bool {
    results
        .iter()
        .any(|r| matches!(r.outcome.status, Status::Fail | Status::Error))
}

/// Threshold helper re-exported for reports.
pub fn tolerance_of(case: &Case) -> Tolerance {
    crate::tolerance::for_case(case.kind(), &case.dtypes())
}
