//! Running one case on one backend: upload, execute, guard checks, compare.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use glmhal_hal::{
    Arithmetic, Backend, Buffer, DType, HalError, HostTensor, Precision, Result, TensorDesc,
    TensorRef,
};
use glmhal_ops::bounds::{error_bounds, rule, Rule};
use serde::Serialize;

use crate::case::Case;
use crate::metrics::{compare, Errors, Expected, Mismatch};

/// Bytes of sentinel before and after every output's storage.
pub const GUARD_BYTES: usize = 1024;
/// The sentinel byte (not a common float pattern, and never written by a correct op).
pub const GUARD_BYTE: u8 = 0xA7;

/// Outcome class of one case on one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every element within its bound, no NaN, infinities only where the
    /// output may overflow, nothing written outside the output.
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
    /// Outputs after the reference ran (rounded to their dtypes).
    pub expected: Vec<HostTensor>,
    /// Output 0's exact values (f64, logical order, before rounding).
    pub exact: Vec<f64>,
    /// Output 0 as the reference stored it, decoded.
    pub rounded: Vec<f64>,
    /// Bounds already derived, per declared precision.
    bounds: Mutex<Vec<(Precision, Arc<Vec<f64>>)>>,
}

impl Prepared {
    /// Per element of output 0, the bound for a backend computing as `precision` declares.
    pub fn bounds(&self, case: &Case, precision: &Precision) -> Result<Arc<Vec<f64>>> {
        let mut known = self.bounds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, b)) = known.iter().find(|(p, _)| p == precision) {
            return Ok(b.clone());
        }
        let out = &case.outputs[0].desc;
        let b = Arc::new(error_bounds(&case.op, &self.inputs, out, precision)?);
        known.push((*precision, b.clone()));
        Ok(b)
    }
}

/// Materializes a case's tensors and runs the reference on them.
pub fn prepare(case: &Case, seed: u64) -> Result<Prepared> {
    let (inputs, initial) = case.materialize(seed)?;
    let mut expected = initial.clone();
    glmhal_ops::reference::execute(&case.op, &inputs, &mut expected)?;
    let exact = glmhal_ops::reference::values(&case.op, &inputs, &initial)?;
    let rounded = decode(&expected[0])?;
    Ok(Prepared {
        inputs,
        initial,
        expected,
        exact,
        rounded,
        bounds: Mutex::new(Vec::new()),
    })
}

/// What happened when a backend ran a case.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The class.
    pub status: Status,
    /// How the case was judged.
    pub rule: Rule,
    /// What the backend declared it computes the case in (the bound follows from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    /// Error measures, when the output was compared.
    pub errors: Option<Errors>,
    /// The reason for anything but a pass.
    pub detail: Option<String>,
    /// Wall time of execute + synchronize, in milliseconds.
    pub elapsed_ms: f64,
}

impl Outcome {
    /// An outcome without measurements.
    pub fn new(status: Status, rule: Rule, detail: impl Into<String>) -> Self {
        Outcome {
            status,
            rule,
            precision: None,
            errors: None,
            detail: Some(detail.into()),
            elapsed_ms: 0.0,
        }
    }
}

/// A case's outcome with output 0 as the backend computed it (decoded,
/// logical order), when it ran.
pub struct Ran {
    /// The outcome.
    pub outcome: Outcome,
    /// Output 0's values.
    pub values: Option<Vec<f64>>,
}

/// Runs `case` on `backend` and judges the result against `prepared`.
/// Never panics: a panicking backend is an error outcome.
pub fn run_case(backend: &dyn Backend, case: &Case, prepared: &Prepared) -> Ran {
    let rule = rule(&case.op);
    let failed = |status, detail: String| Ran {
        outcome: Outcome::new(status, rule, detail),
        values: None,
    };
    let (in_descs, out_descs) = case.descs();
    let support = catch_unwind(AssertUnwindSafe(|| {
        backend.supports(&case.op, &in_descs, &out_descs)
    }));
    match support {
        Ok(glmhal_hal::Support::Supported) => {}
        Ok(glmhal_hal::Support::Unsupported(reason)) => {
            return failed(Status::Unsupported, reason);
        }
        Err(_) => return failed(Status::Error, "supports() panicked".into()),
    }
    let Ok(precision) = catch_unwind(AssertUnwindSafe(|| {
        backend.precision(&case.op, &in_descs, &out_descs)
    })) else {
        return failed(Status::Error, "precision() panicked".into());
    };
    let bounds = match prepared.bounds(case, &precision) {
        Ok(b) => b,
        Err(e) => return failed(Status::Error, format!("deriving the bounds: {e}")),
    };
    match catch_unwind(AssertUnwindSafe(|| {
        execute_and_judge(backend, case, prepared, rule, &bounds)
    })) {
        Ok(Ok(mut ran)) => {
            ran.outcome.precision = Some(precision);
            ran
        }
        Ok(Err(e)) => failed(Status::Error, e.to_string()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            failed(Status::Error, format!("the backend panicked: {msg}"))
        }
    }
}

fn guarded(initial: &HostTensor) -> Vec<u8> {
    let mut bytes = vec![GUARD_BYTE; GUARD_BYTES];
    bytes.extend_from_slice(&initial.data);
    bytes.extend(std::iter::repeat_n(GUARD_BYTE, GUARD_BYTES));
    bytes
}

/// How one execution's outcome is built: the rule judged by and the time measured.
struct Judged {
    rule: Rule,
    elapsed_ms: f64,
}

impl Judged {
    /// The case's result with these measurements.
    fn ran(
        &self,
        status: Status,
        errors: Option<Errors>,
        detail: Option<String>,
        values: Option<Vec<f64>>,
    ) -> Ran {
        Ran {
            outcome: Outcome {
                status,
                rule: self.rule,
                precision: None,
                errors,
                detail,
                elapsed_ms: self.elapsed_ms,
            },
            values,
        }
    }

    /// A failure found before the output was compared.
    fn fail(&self, detail: String) -> Ran {
        self.ran(Status::Fail, None, Some(detail), None)
    }
}

/// Runs the case once and judges it: inputs untouched, guards intact, values
/// within their bounds, and the same bytes from a second run.
fn execute_and_judge(
    backend: &dyn Backend,
    case: &Case,
    prepared: &Prepared,
    rule: Rule,
    bounds: &[f64],
) -> Result<Ran> {
    let in_bufs = upload_inputs(backend, case, prepared)?;
    // A prepared weight is in the backend's layout: it must read back the
    // same after the op as before it.
    let in_images = in_bufs
        .iter()
        .zip(&prepared.inputs)
        .map(|(b, t)| {
            if !is_prepared(case, prepared, t) {
                return Ok(t.data.clone());
            }
            let mut image = vec![0u8; b.len()];
            backend.download(b, 0, &mut image)?;
            Ok(image)
        })
        .collect::<Result<Vec<Vec<u8>>>>()?;
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
    let out_views = guarded_views(&out_bufs, case);

    let start = Instant::now();
    backend.execute(&case.op, &in_views, &out_views)?;
    backend.synchronize()?;
    let judged = Judged {
        rule,
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    };

    if let Some(detail) = modified_input(backend, &in_bufs, &in_images)? {
        return Ok(judged.fail(detail));
    }
    let Downloaded {
        values: mut outputs,
        images: first_run,
    } = match read_outputs(backend, &out_bufs, &out_images, prepared)? {
        Ok(read) => read,
        Err(detail) => return Ok(judged.fail(detail)),
    };
    let got = outputs.swap_remove(0);
    let out_desc = &prepared.initial[0].desc;
    let expected = Expected {
        rule,
        exact: &prepared.exact,
        rounded: &prepared.rounded,
        bounds,
        output: Arithmetic::of(out_desc.dtype),
    };
    let (errors, mismatch) = compare(&expected, &got);
    let Some(m) = mismatch else {
        // The same inputs must give the same bytes again.
        let again = run_again(backend, case, &in_views, &out_images)?;
        if let Some((o, at)) = first_difference(&first_run, &again) {
            return Ok(judged.ran(
                Status::Fail,
                Some(errors),
                Some(format!(
                    "output {o} differs between two runs of the same inputs (byte {at} of its storage)"
                )),
                Some(got),
            ));
        }
        return Ok(judged.ran(Status::Pass, Some(errors), None, Some(got)));
    };
    let detail = mismatch_detail(m, out_desc, rule, &errors);
    Ok(judged.ran(Status::Fail, Some(errors), Some(detail), Some(got)))
}

/// Whether input `t` of the case is a whole model weight, which the
/// executor would hand the backend through `prepare_weight` (views into a
/// larger storage are uploaded as they are).
fn is_prepared(case: &Case, prepared: &Prepared, t: &HostTensor) -> bool {
    let spec = glmhal_ops::catalogue::spec_ref(case.op.kind());
    let i = prepared
        .inputs
        .iter()
        .position(|u| std::ptr::eq(u, t))
        .unwrap_or(usize::MAX);
    spec.inputs.get(i).is_some_and(|a| a.weight)
        && t.desc.offset == 0
        && t.desc.is_contiguous()
        && t.desc.dtype.bytes_for(t.desc.numel()) == t.data.len()
}

/// The case's inputs on the device: whole weights through `prepare_weight`
/// (as the executor supplies them), everything else uploaded as it is.
fn upload_inputs(backend: &dyn Backend, case: &Case, prepared: &Prepared) -> Result<Vec<Buffer>> {
    prepared
        .inputs
        .iter()
        .map(|t| {
            if is_prepared(case, prepared, t) {
                backend.prepare_weight(&t.desc, &t.data)
            } else {
                backend.upload_new(&t.data)
            }
        })
        .collect()
}

/// Inputs must come back as they went in (`images`, read back after
/// upload): the first one the op wrote to, described.
fn modified_input(
    backend: &dyn Backend,
    in_bufs: &[Buffer],
    images: &[Vec<u8>],
) -> Result<Option<String>> {
    for (i, (buf, image)) in in_bufs.iter().zip(images).enumerate() {
        let mut back = vec![0u8; image.len()];
        backend.download(buf, 0, &mut back)?;
        if &back != image {
            return Ok(Some(format!("input {i} was modified by the op")));
        }
    }
    Ok(None)
}

/// Every output as downloaded after the op.
struct Downloaded {
    /// Decoded values of each output's storage (logical order).
    values: Vec<Vec<f64>>,
    /// Each output's whole guarded image, to compare with a second run.
    images: Vec<Vec<u8>>,
}

/// Downloads every output, or (inner `Err`) describes the first stray
/// write outside an output's storage.
fn read_outputs(
    backend: &dyn Backend,
    out_bufs: &[Buffer],
    out_images: &[Vec<u8>],
    prepared: &Prepared,
) -> Result<std::result::Result<Downloaded, String>> {
    let mut outputs = Vec::new();
    let mut first_run = Vec::new();
    for (o, (buf, image)) in out_bufs.iter().zip(out_images).enumerate() {
        let mut back = vec![0u8; image.len()];
        backend.download(buf, 0, &mut back)?;
        first_run.push(back.clone());
        if let Some(msg) = stray_write(&back, image, &prepared.initial[o]) {
            return Ok(Err(format!("output {o}: {msg}")));
        }
        let storage = back[GUARD_BYTES..back.len() - GUARD_BYTES].to_vec();
        outputs.push(decode(&HostTensor::new(
            prepared.initial[o].desc.clone(),
            storage,
        )?)?);
    }
    Ok(Ok(Downloaded {
        values: outputs,
        images: first_run,
    }))
}

/// Why an output that disagrees with the reference fails, for the report.
fn mismatch_detail(m: Mismatch, out_desc: &TensorDesc, rule: Rule, errors: &Errors) -> String {
    match m {
        Mismatch::NaN(i) => format!("NaN at element {i}"),
        Mismatch::Infinity {
            index,
            expected,
            got,
        } => format!("element {index} is {got}, exact {expected:e}"),
        Mismatch::OutOfBound {
            index,
            expected,
            got,
            bound,
        } => {
            let at = out_desc.describe_index(index);
            if rule == Rule::Exact {
                format!("element {index}{at} is {got:e}, reference {expected:e} (must be exact)")
            } else {
                format!(
                    "element {index}{at} is {got:e}, exact {expected:e}: error {:.3e} > bound {bound:.3e} (bound ratio {:.3})",
                    (got - expected).abs(),
                    errors.bound_ratio.unwrap_or(f64::INFINITY)
                )
            }
        }
        Mismatch::Length(a, b) => format!("{b} values, reference {a}"),
    }
}

/// Runs the case's op once more on fresh outputs, returning their guarded images.
fn run_again(
    backend: &dyn Backend,
    case: &Case,
    in_views: &[TensorRef<'_>],
    out_images: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>> {
    let bufs = out_images
        .iter()
        .map(|img| backend.upload_new(img))
        .collect::<Result<Vec<Buffer>>>()?;
    let views = guarded_views(&bufs, case);
    backend.execute(&case.op, in_views, &views)?;
    backend.synchronize()?;
    bufs.iter()
        .zip(out_images)
        .map(|(b, img)| {
            let mut back = vec![0u8; img.len()];
            backend.download(b, 0, &mut back)?;
            Ok(back)
        })
        .collect()
}

/// The case's output views in buffers that hold a guard region before each.
fn guarded_views<'a>(bufs: &'a [Buffer], case: &Case) -> Vec<TensorRef<'a>> {
    bufs.iter()
        .zip(&case.outputs)
        .map(|(b, t)| {
            let mut d = t.desc.clone();
            d.offset += GUARD_BYTES;
            b.view(d)
        })
        .collect()
}

/// The first output and byte (past the guard) where two runs differ.
fn first_difference(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<(usize, usize)> {
    a.iter().zip(b).enumerate().find_map(|(o, (x, y))| {
        x.iter()
            .zip(y)
            .position(|(p, q)| p != q)
            .map(|i| (o, i.saturating_sub(GUARD_BYTES)))
    })
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
