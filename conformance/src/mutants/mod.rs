//! The mutant catalogue: faults real kernels have had, each planted in a
//! real backend by name, which the suite must catch.
//!
//! [`Mutated`] wraps a backend and, for the one op a [`Mutant`] targets,
//! changes what runs: the inputs it sees, its parameters, its output after
//! it ran, the kernel itself (a host version with the bug), or what it
//! declares. [`hunt`] runs the cases of each mutant's op until one fails:
//! that case killed it. A mutant that survives is a case the suite lacks.

mod catalogue;
mod experts;
mod kernels;

use std::sync::Mutex;

use glmhal_hal::{
    Backend, Buffer, DeviceId, DeviceInfo, HostTensor, Op, OpContract, OpKind, Precision, Result,
    Support, TensorDesc, TensorRef,
};
use serde::Serialize;

use crate::case::Case;
use crate::runner::{prepare, run_case, Status};

pub use catalogue::all;
pub use kernels::{ArgmaxBug, AttentionBug, CastBug, Kernel, NormBug, PointwiseBug, SoftmaxBug};

/// What a mutant changes.
#[derive(Clone, Copy)]
pub enum Plant {
    /// The inputs, before the real kernel runs on them.
    Inputs(fn(&Op, &mut [HostTensor])),
    /// The op's parameters.
    Params(fn(&Op) -> Op),
    /// The output after the real kernel ran: `(op, inputs, output before, output)`.
    Output(fn(&Op, &[HostTensor], &HostTensor, &mut HostTensor)),
    /// The kernel: a host version with the bug writes the output.
    Kernel(Kernel),
    /// One byte past the output view is written after the real kernel.
    SpillPast,
    /// The previous call's output (of the same size) is returned again.
    Stale,
    /// One output element moves by one unit in the last place, a different
    /// one on every call.
    Nondeterministic,
}

/// One planted fault.
#[derive(Clone, Copy)]
pub struct Mutant {
    /// Its name on the command line.
    pub name: &'static str,
    /// The op it is planted in.
    pub op: OpKind,
    /// The bug, as a kernel author would describe it.
    pub bug: &'static str,
    /// How it is planted.
    pub plant: Plant,
    /// What the mutant declares instead of the backend's declaration, if anything.
    pub declares: Option<fn(Precision) -> Precision>,
}

impl std::fmt::Debug for Mutant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.op)
    }
}

/// The backend a mutant is planted in: borrowed for a hunt, owned when a
/// model runs on it.
enum Host<'a> {
    Borrowed(&'a dyn Backend),
    Owned(Box<dyn Backend>),
}

/// A backend with one mutant planted.
pub struct Mutated<'a> {
    host: Host<'a>,
    mutant: Mutant,
    /// Plant only in this call of the op (counted from 0), every call when `None`.
    only_call: Option<usize>,
    /// Calls of the op so far.
    calls: std::sync::atomic::AtomicUsize,
    /// For [`Plant::Stale`]: the last output; for [`Plant::Nondeterministic`]: calls so far.
    memory: Mutex<(Vec<u8>, u64)>,
}

impl<'a> Mutated<'a> {
    /// `inner` with `mutant` planted.
    pub fn new(inner: &'a dyn Backend, mutant: Mutant) -> Self {
        Self::with_host(Host::Borrowed(inner), mutant)
    }

    fn with_host(host: Host<'a>, mutant: Mutant) -> Self {
        Mutated {
            host,
            mutant,
            only_call: None,
            calls: std::sync::atomic::AtomicUsize::new(0),
            memory: Mutex::new((Vec::new(), 0)),
        }
    }

    /// Plants the mutant only in call `n` (from 0) of its op: one layer's
    /// node of a model, say.
    pub fn only_in_call(mut self, n: usize) -> Self {
        self.only_call = Some(n);
        self
    }

    fn inner(&self) -> &dyn Backend {
        match &self.host {
            Host::Borrowed(b) => *b,
            Host::Owned(b) => b.as_ref(),
        }
    }

    /// A host copy of a view's bytes, its descriptor rebased onto them.
    fn read(&self, t: &TensorRef<'_>) -> Result<HostTensor> {
        let range = t.desc.byte_range();
        let mut bytes = vec![0u8; range.len()];
        self.inner().download(t.buffer, range.start, &mut bytes)?;
        let mut desc = t.desc.clone();
        desc.offset -= range.start;
        HostTensor::new(desc, bytes)
    }

    /// Writes a host copy made by [`Mutated::read`] back over its view.
    fn write(&self, t: &TensorRef<'_>, host: &HostTensor) -> Result<()> {
        self.inner()
            .upload(t.buffer, t.desc.byte_range().start, &host.data)
    }

    fn read_all(&self, ts: &[TensorRef<'_>]) -> Result<Vec<HostTensor>> {
        ts.iter().map(|t| self.read(t)).collect()
    }

    fn planted(&self, op: &Op, inputs: &[TensorRef<'_>], outputs: &[TensorRef<'_>]) -> Result<()> {
        let out = &outputs[0];
        match self.mutant.plant {
            Plant::Params(change) => self.inner().execute(&change(op), inputs, outputs),
            Plant::Inputs(change) => {
                let mut hosts = self.read_all(inputs)?;
                change(op, &mut hosts);
                let buffers: Vec<Buffer> = hosts
                    .iter()
                    .map(|h| self.inner().upload_new(&h.data))
                    .collect::<Result<_>>()?;
                let views: Vec<TensorRef<'_>> = buffers
                    .iter()
                    .zip(&hosts)
                    .map(|(b, h)| b.view(h.desc.clone()))
                    .collect();
                self.inner().execute(op, &views, outputs)?;
                self.inner().synchronize()
            }
            Plant::Output(change) => {
                let before = self.read(out)?;
                self.inner().execute(op, inputs, outputs)?;
                self.inner().synchronize()?;
                let hosts = self.read_all(inputs)?;
                let mut after = self.read(out)?;
                change(op, &hosts, &before, &mut after);
                self.write(out, &after)
            }
            Plant::Kernel(kernel) => {
                let hosts = self.read_all(inputs)?;
                let mut result = self.read(out)?;
                kernel.run(op, &hosts, &mut result)?;
                self.write(out, &result)
            }
            Plant::SpillPast => {
                self.inner().execute(op, inputs, outputs)?;
                self.inner().synchronize()?;
                let end = out.desc.byte_range().end;
                if end < out.buffer.len() {
                    let mut byte = [0u8; 1];
                    self.inner().download(out.buffer, end, &mut byte)?;
                    self.inner().upload(out.buffer, end, &[!byte[0]])?;
                }
                Ok(())
            }
            Plant::Stale => {
                self.inner().execute(op, inputs, outputs)?;
                self.inner().synchronize()?;
                let mut fresh = self.read(out)?;
                let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                let previous = std::mem::replace(&mut memory.0, fresh.data.clone());
                if previous.len() == fresh.data.len() {
                    fresh.data = previous;
                    self.write(out, &fresh)?;
                }
                Ok(())
            }
            Plant::Nondeterministic => {
                self.inner().execute(op, inputs, outputs)?;
                self.inner().synchronize()?;
                let mut result = self.read(out)?;
                let calls = {
                    let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                    memory.1 += 1;
                    memory.1
                };
                let mut values = result.to_f32();
                if !values.is_empty() {
                    let at = (calls as usize * 7919) % values.len();
                    let v = values[at];
                    values[at] = f32::from_bits(v.to_bits() ^ (1 << 13));
                    result.write_f32(&values)?;
                    self.write(out, &result)?;
                }
                Ok(())
            }
        }
    }
}

impl Mutated<'static> {
    /// `inner`, owned, with `mutant` planted: a backend a model can be loaded onto.
    pub fn owning(inner: Box<dyn Backend>, mutant: Mutant) -> Self {
        Self::with_host(Host::Owned(inner), mutant)
    }
}

/// `NAME` or `NAME@N` (planted only in call N of its op), as `--plant` takes it.
pub fn parse_plant(text: &str) -> std::result::Result<(Mutant, Option<usize>), String> {
    let (name, call) = match text.split_once('@') {
        Some((n, c)) => (
            n,
            Some(
                c.parse::<usize>()
                    .map_err(|_| format!("`{c}` in `{text}` is not a call number"))?,
            ),
        ),
        None => (text, None),
    };
    let mutant = select(&[name.to_string()])?.remove(0);
    Ok((mutant, call))
}

impl Backend for Mutated<'_> {
    fn name(&self) -> &'static str {
        self.inner().name()
    }
    fn info(&self) -> &DeviceInfo {
        self.inner().info()
    }
    fn device_id(&self) -> DeviceId {
        self.inner().device_id()
    }
    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        self.inner().alloc(bytes)
    }
    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        self.inner().upload(dst, offset, data)
    }
    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.inner().download(src, offset, out)
    }
    fn contract(&self) -> &'static dyn OpContract {
        self.inner().contract()
    }
    fn supports_valid(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        self.inner().supports(op, inputs, outputs)
    }
    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision {
        let declared = self.inner().precision(op, inputs, outputs);
        match self.mutant.declares {
            Some(change) if op.kind() == self.mutant.op => change(declared),
            _ => declared,
        }
    }
    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        let here = op.kind() == self.mutant.op
            && self.only_call.is_none_or(|n| {
                n == self
                    .calls
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            });
        if here {
            self.planted(op, inputs, outputs)
        } else {
            self.inner().execute(op, inputs, outputs)
        }
    }
    fn synchronize(&self) -> Result<()> {
        self.inner().synchronize()
    }
}

/// What became of one mutant.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Mutant name.
    pub mutant: &'static str,
    /// Its op.
    pub op: OpKind,
    /// The bug.
    pub bug: &'static str,
    /// The first case that caught it (`None`: it survived).
    pub killed_by: Option<String>,
    /// What that case reported.
    pub detail: Option<String>,
    /// Cases run against it.
    pub cases_run: usize,
}

/// The mutants named in `names` (every one when empty), or the unknown name.
pub fn select(names: &[String]) -> std::result::Result<Vec<Mutant>, String> {
    let catalogue = all();
    if names.is_empty() {
        return Ok(catalogue);
    }
    names
        .iter()
        .map(|n| {
            catalogue
                .iter()
                .find(|m| m.name == n.as_str())
                .copied()
                .ok_or_else(|| {
                    let known: Vec<&str> = catalogue.iter().map(|m| m.name).collect();
                    format!("unknown mutant `{n}`; known: {}", known.join(", "))
                })
        })
        .collect()
}

/// Runs each mutant planted in `backend` against the cases of its op (in
/// catalogue order, each case's reference computed once for every mutant
/// of that op) until a case fails or errors.
pub fn hunt(
    backend: &dyn Backend,
    mutants: &[Mutant],
    cases: &[Case],
    seed: u64,
    progress: &mut dyn FnMut(&Verdict),
) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = mutants
        .iter()
        .map(|m| Verdict {
            mutant: m.name,
            op: m.op,
            bug: m.bug,
            killed_by: None,
            detail: None,
            cases_run: 0,
        })
        .collect();
    let planted: Vec<Mutated<'_>> = mutants.iter().map(|m| Mutated::new(backend, *m)).collect();
    for case in cases {
        let alive: Vec<usize> = (0..mutants.len())
            .filter(|&i| mutants[i].op == case.kind() && verdicts[i].killed_by.is_none())
            .collect();
        if alive.is_empty() {
            continue;
        }
        let Ok(prepared) = prepare(case, seed) else {
            continue;
        };
        for i in alive {
            let ran = run_case(&planted[i], case, &prepared);
            let v = &mut verdicts[i];
            v.cases_run += 1;
            if matches!(ran.outcome.status, Status::Fail | Status::Error) {
                v.killed_by = Some(case.id.clone());
                v.detail = ran.outcome.detail;
                progress(v);
            }
        }
    }
    for v in verdicts.iter().filter(|v| v.killed_by.is_none()) {
        progress(v);
    }
    verdicts
}

/// The verdicts as a Markdown table.
pub fn markdown(verdicts: &[Verdict]) -> String {
    let mut s = String::from("| mutant | op | bug | killed by |\n|---|---|---|---|\n");
    for v in verdicts {
        s.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            v.mutant,
            v.op,
            v.bug,
            v.killed_by
                .as_ref()
                .map_or("**survived**".to_string(), |c| format!("`{c}`"))
        ));
    }
    s
}
