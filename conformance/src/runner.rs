//! Running one case on one backend: upload, execute, guard checks, compare.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use glmhal_hal::{Backend, Buffer, DType, HalError, HostTensor, Result, TensorDesc, TensorRef};
use serde::Serialize;

use crate::case::Case;
use crate::metrics::{compare_allowing, Errors, Mismatch};
use crate::tolerance::{for_case, Tolerance};

/// Bytes of sentinel before and after every output's storage.
pub const GUARD_BYTES: usize = 1024;
/// The sentinel byte (not a common float pattern, and never written by a correct op).
pub const GUARD_BYTE: u8 = 0xA7;

/// Outcome class of one case on one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Within tolerance, no NaN, infinities match, nothing written outside the output.
    Pass,
    /// Ran but disagreed with the reference or wrote out of bounds.
    Fail,
    /// The backend says it cannot run this (never counted as a pass).
    Unsupported,
    /// The backend claimed support but failed to run it, or the harness failed.
    Error,
}

/// A case with its inputs and the reference's answer, shared by all backends.
pub struct Prepared {
    /// Input tensors (whole storage).
    pub inputs: Vec<HostTensor>,
    /// Outputs before the op (whole storage).
    pub initial: Vec<HostTensor>,
    /// Outputs after the reference ran.
    pub expected: Vec<HostTensor>,
    /// Per element of output 0, the error forgiven before NMSE (empty:
    /// none; see [`crate::allowance`]).
    pub allowance: Vec<f64>,
}

/// Materializes a case's tensors and runs the reference on them.
pub fn prepare(case: &Case, seed: u64) -> Result<Prepared> {
    let (inputs, initial) = case.materialize(seed)?;
    let mut expected = initial.clone();
    glmhal_ops::reference::execute(&case.op, &inputs, &mut expected)?;
    let allowance = crate::allowance::for_op(&case.op, &inputs).unwrap_or_default();
    Ok(Prepared {
        inputs,
        initial,
        expected,
        allowance,
    })
}

/// What happened when a backend ran a case.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The class.
    pub status: Status,
    /// The threshold that applied.
    pub tolerance: Tolerance,
    /// Error measures, when the output was compared.
    pub errors: Option<Errors>,
    /// The reason for anything but a pass.
    pub detail: Option<String>,
    /// Wall time of execute + synchronize, in milliseconds.
    pub elapsed_ms: f64,
}

impl Outcome {
    fn new(status: Status, tolerance: Tolerance, detail: impl Into<String>) -> Self {
        Outcome {
            status,
            tolerance,
            errors: None,
            detail: Some(detail.into()),
            elapsed_ms: 0.0,
        }
    }
}

/// Runs `case` on `backend` and judges the result against `prepared`.
/// Never panics: a panicking backend is an error outcome.
pub fn run_case(backend: &dyn Backend, case: &Case, prepared: &Prepared) -> Outcome {
    let tolerance = for_case(case.kind(), &case.dtypes());
    let in_descs: Vec<TensorDesc> = case.inputs.iter().map(|t| t.desc.clone()).collect();
    let out_descs: Vec<TensorDesc> = case.outputs.iter().map(|t| t.desc.clone()).collect();
    let support = catch_unwind(AssertUnwindSafe(|| {
        backend.supports(&case.op, &in_descs, &out_descs)
    }));
    match support {
        Ok(glmhal_hal::Support::Supported) => {}
        Ok(glmhal_hal::Support::Unsupported(reason)) => {
            return Outcome::new(Status::Unsupported, tolerance, reason)
        }
        Err(_) => return Outcome::new(Status::Error, tolerance, "supports() panicked"),
    }
    match catch_unwind(AssertUnwindSafe(|| {
        execute_and_judge(backend, case, prepared, tolerance)
    })) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::new(Status::Error, tolerance, e.to_string()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Outcome::new(
                Status::Error,
                tolerance,
                format!("the backend panicked: {msg}"),
            )
        }
    }
}

fn guarded(initial: &HostTensor) -> Vec<u8> {
    let mut bytes = vec![GUARD_BYTE; GUARD_BYTES];
    bytes.extend_from_slice(&initial.data);
    bytes.extend(std::iter::repeat_n(GUARD_BYTE, GUARD_BYTES));
    bytes
}

fn execute_and_judge(
    backend: &dyn Backend,
    case: &Case,
    prepared: &Prepared,
    tolerance: Tolerance,
) -> Result<Outcome> {
    let in_bufs = prepared
        .inputs
        .iter()
        .map(|t| backend.upload_new(&t.data))
        .collect::<Result<Vec<Buffer>>>()?;
    let out_images: Vec<Vec<u8>> = prepared.initial.iter().map(guarded).collect();
    let out_bufs = out_images
        .iter()
        .map(|img| backend.upload_new(img))
        .collect::<Result<Vec<Buffer>>>()?;
    let in_views: Vec<TensorRef<'_>> = in_bufs
        .iter()
        .zip(&prepared.inputs)
        .map(|(b, t)| b.view(t.desc.clone()))
        .collect();
    let out_views: Vec<TensorRef<'_>> = out_bufs
        .iter()
        .zip(&prepared.initial)
        .map(|(b, t)| {
            let mut d = t.desc.clone();
            d.offset += GUARD_BYTES;
            b.view(d)
        })
        .collect();

    let start = Instant::now();
    backend.execute(&case.op, &in_views, &out_views)?;
    backend.synchronize()?;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;

    let judged = |status, errors, detail: Option<String>| Outcome {
        status,
        tolerance,
        errors,
        detail,
        elapsed_ms,
    };

    // Inputs must come back unchanged.
    for (i, (buf, t)) in in_bufs.iter().zip(&prepared.inputs).enumerate() {
        let mut back = vec![0u8; t.data.len()];
        backend.download(buf, 0, &mut back)?;
        if back != t.data {
            return Ok(judged(
                Status::Fail,
                None,
                Some(format!("input {i} was modified by the op")),
            ));
        }
    }

    let mut worst: Option<Errors> = None;
    for (o, (buf, image)) in out_bufs.iter().zip(&out_images).enumerate() {
        let mut back = vec![0u8; image.len()];
        backend.download(buf, 0, &mut back)?;
        if let Some(msg) = stray_write(&back, image, &prepared.initial[o]) {
            return Ok(judged(
                Status::Fail,
                None,
                Some(format!("output {o}: {msg}")),
            ));
        }
        let storage = back[GUARD_BYTES..back.len() - GUARD_BYTES].to_vec();
        let got = HostTensor::new(prepared.initial[o].desc.clone(), storage)?;
        let (expected, actual) = (decode(&prepared.expected[o])?, decode(&got)?);
        let allowance: &[f64] = if o == 0 { &prepared.allowance } else { &[] };
        let (errors, mismatch) = compare_allowing(&expected, &actual, tolerance, allowance);
        worst = Some(errors);
        if let Some(m) = mismatch {
            let detail = match m {
                Mismatch::NaN(i) => format!("output {o}: NaN at element {i}"),
                Mismatch::Infinity {
                    index,
                    expected,
                    got,
                } => {
                    format!("output {o}: element {index} is {got}, reference {expected}")
                }
                Mismatch::OverThreshold => match tolerance {
                    Tolerance::Exact => {
                        format!("output {o}: not exact (max abs error {:e})", errors.max_abs)
                    }
                    Tolerance::Nmse(t) => match errors.nmse_beyond_allowance {
                        Some(beyond) => format!(
                            "output {o}: NMSE beyond the int8 rounding allowance {beyond:e} > {t:e} (NMSE {:e})",
                            errors.nmse
                        ),
                        None => format!("output {o}: NMSE {:e} > {t:e}", errors.nmse),
                    },
                },
                Mismatch::Length(a, b) => format!("output {o}: {b} values, reference {a}"),
            };
            return Ok(judged(Status::Fail, worst, Some(detail)));
        }
    }
    Ok(judged(Status::Pass, worst, None))
}

/// Describes the first byte that changed outside the output view, if any.
fn stray_write(back: &[u8], image: &[u8], initial: &HostTensor) -> Option<String> {
    if back.len() != image.len() {
        return Some("downloaded size differs".into());
    }
    let storage_end = back.len() - GUARD_BYTES;
    if let Some(i) = (0..GUARD_BYTES).find(|&i| back[i] != image[i]) {
        return Some(format!(
            "wrote into the guard {} bytes before its storage",
            GUARD_BYTES - i
        ));
    }
    if let Some(i) = (storage_end..back.len()).find(|&i| back[i] != image[i]) {
        return Some(format!(
            "wrote into the guard {} bytes past its storage",
            i - storage_end
        ));
    }
    let mask = initial.view_mask();
    let stray = mask
        .iter()
        .enumerate()
        .find(|(i, inside)| !**inside && back[GUARD_BYTES + i] != image[GUARD_BYTES + i]);
    stray.map(|(i, _)| {
        format!(
            "wrote byte {i} of its storage, which is outside the view {}",
            initial.desc.describe()
        )
    })
}

fn decode(t: &HostTensor) -> Result<Vec<f64>> {
    if t.desc.dtype == DType::I32 {
        return Ok(t.to_i32()?.into_iter().map(f64::from).collect());
    }
    if t.data.is_empty() {
        return Err(HalError::Layout("empty output".into()));
    }
    Ok(t.to_f64())
}
