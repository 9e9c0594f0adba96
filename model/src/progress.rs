//! How long work in this crate (loading weights, writing a synthetic
//! checkpoint, converting to GGUF) says how far it is: a callback given the
//! stage, the units done and the units in all (tensors). The CLI draws it;
//! a library user who passes nothing pays nothing.

use std::sync::Arc;

/// A report of `(stage, done, total)`.
type Report = dyn Fn(&str, u64, u64) + Send + Sync;

/// Where progress goes; [`Progress::default`] discards it.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Report>>);

impl Progress {
    /// Progress reported to `report(stage, done, total)`.
    pub fn new(report: impl Fn(&str, u64, u64) + Send + Sync + 'static) -> Self {
        Progress(Some(Arc::new(report)))
    }

    /// Says that `done` of `total` units of `stage` are finished.
    pub fn report(&self, stage: &str, done: usize, total: usize) {
        if let Some(report) = &self.0 {
            report(stage, done as u64, total as u64);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(reported)"
        } else {
            "Progress(none)"
        })
    }
}
