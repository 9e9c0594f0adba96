//! Streams as on a device: a launched op is queued and runs later, in
//! order, on the stream's worker thread; the host sees its results only
//! after `aclrtSynchronizeStream`. The simulator lets the device lag as far
//! as it may: queued work runs when the stream is synchronized, so a
//! missing synchronization always shows. While an op is queued or running,
//! the memory it touches (its tensors' storage and its workspace) may not
//! be freed or overwritten by a host copy.

use std::sync::mpsc::{channel, Sender};

use crate::ops::Work;

/// Byte the workspace is filled with before and after each op, so a
/// workspace read or written outside its op shows as garbage.
pub(crate) const POISON: u8 = 0xFF;

/// One launched op waiting on its stream.
pub(crate) struct Job {
    /// `aclnnXxx`.
    pub call: String,
    /// What it computes.
    pub work: Work,
    /// Device memory its tensors live in: `(start, bytes)`.
    pub regions: Vec<(usize, usize)>,
    /// Its workspace: `(start, bytes)`.
    pub workspace: (usize, usize),
}

impl Job {
    /// Whether the job touches any byte of `[start, start + len)`.
    pub fn touches(&self, start: usize, len: usize) -> bool {
        self.regions
            .iter()
            .chain(std::iter::once(&self.workspace))
            .any(|(s, l)| *l > 0 && overlaps((*s, *l), (start, len)))
    }

    /// Runs the job: the workspace poisoned before and after; errors are
    /// violations found while running.
    fn execute(self) -> Result<(), String> {
        let (ws, ws_len) = self.workspace;
        let poison = || {
            if ws_len > 0 {
                // SAFETY: the workspace was checked to lie inside a live
                // allocation at launch, and cannot be freed while queued.
                unsafe { std::ptr::write_bytes(ws as *mut u8, POISON, ws_len) };
            }
        };
        poison();
        let result = self.work.execute();
        poison();
        result.map_err(|what| format!("{}: {what}", self.call))
    }
}

/// Whether two byte ranges share a byte.
pub(crate) fn overlaps((a, alen): (usize, usize), (b, blen): (usize, usize)) -> bool {
    alen > 0 && blen > 0 && a < b + blen && b < a + alen
}

/// A stream's queue and the worker thread that runs it.
pub(crate) struct Stream {
    /// Launched, not yet handed to the worker.
    pub queued: Vec<Job>,
    /// Regions of the batches handed to the worker and not finished, by
    /// batch number (several threads may synchronize one stream).
    pub running: Vec<(u64, Vec<(usize, usize)>)>,
    batches: u64,
    /// The device whose context created it.
    pub device: i32,
    worker: Sender<(Vec<Job>, Sender<Vec<String>>)>,
}

impl Stream {
    /// A stream of `device` with its own worker thread.
    pub fn new(device: i32) -> Stream {
        let (worker, jobs) = channel::<(Vec<Job>, Sender<Vec<String>>)>();
        std::thread::spawn(move || {
            for (batch, done) in jobs {
                let errors = batch
                    .into_iter()
                    .filter_map(|j| j.execute().err())
                    .collect();
                // The synchronizing thread waits for this; it cannot be gone.
                let _ = done.send(errors);
            }
        });
        Stream {
            queued: Vec::new(),
            running: Vec::new(),
            batches: 0,
            device,
            worker,
        }
    }

    /// Whether work is queued or running.
    pub fn busy(&self) -> bool {
        !self.queued.is_empty() || !self.running.is_empty()
    }

    /// Whether queued or running work touches `[start, start + len)`.
    pub fn touches(&self, start: usize, len: usize) -> bool {
        self.queued.iter().any(|j| j.touches(start, len))
            || self
                .running
                .iter()
                .any(|(_, rs)| rs.iter().any(|r| overlaps(*r, (start, len))))
    }

    /// Hands the queue to the worker as one batch; returns its number (for
    /// [`Stream::finished`]) and a receiver that yields the violations found
    /// once it, and every batch before it, has run.
    pub fn flush(&mut self) -> (u64, std::sync::mpsc::Receiver<Vec<String>>) {
        let jobs = std::mem::take(&mut self.queued);
        self.batches += 1;
        let regions = jobs
            .iter()
            .flat_map(|j| j.regions.iter().copied().chain([j.workspace]))
            .collect();
        self.running.push((self.batches, regions));
        let (done, finished) = channel();
        if let Err(e) = self.worker.send((jobs, done.clone())) {
            // The worker is gone (it panicked): report, do not hang.
            let _ = done.send(vec![format!(
                "stream worker stopped: {} job(s) lost",
                e.0 .0.len()
            )]);
        }
        (self.batches, finished)
    }

    /// Forgets the regions of batch `n`, which has run.
    pub fn finished(&mut self, n: u64) {
        self.running.retain(|(b, _)| *b != n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_overlap_only_when_they_share_a_byte() {
        assert!(overlaps((0, 4), (3, 1)));
        assert!(!overlaps((0, 4), (4, 4)));
        assert!(!overlaps((0, 0), (0, 4)));
    }
}
