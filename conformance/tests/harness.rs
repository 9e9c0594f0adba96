//! The harness must catch broken backends: each fault below is injected into
//! a CPU backend and must turn passing cases into the right status.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_conformance::{
    run, BackendEntry, CaseResult, Filter, Report, Run, Status, Target, DEFAULT_SEED,
};
use glmhal_cpu::CpuBackend;
use glmhal_hal::{
    Backend, Buffer, DeviceId, DeviceInfo, HostTensor, Op, OpContract, OpKind, Precision, Result,
    Support, TensorDesc, TensorRef,
};

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// One byte just past the output view's last byte.
    SpillPast,
    /// One byte just before the output view.
    SpillBefore,
    /// The first output byte's high bits flipped.
    Corrupt,
    /// The first f32 output element set to NaN.
    NaN,
    /// The first input byte overwritten.
    TouchInput,
    /// Claims nothing is supported.
    Unsupported,
    /// Panics inside execute.
    Panic,
}

struct Faulty {
    inner: CpuBackend,
    fault: Fault,
}

impl Faulty {
    fn flip_byte(&self, buffer: &Buffer, at: usize) -> Result<()> {
        let mut b = [0u8; 1];
        self.inner.download(buffer, at, &mut b)?;
        self.inner.upload(buffer, at, &[!b[0]])
    }
}

impl Backend for Faulty {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn info(&self) -> &DeviceInfo {
        self.inner.info()
    }
    fn device_id(&self) -> DeviceId {
        self.inner.device_id()
    }
    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        self.inner.alloc(bytes)
    }
    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        self.inner.upload(dst, offset, data)
    }
    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.inner.download(src, offset, out)
    }
    fn contract(&self) -> &'static dyn OpContract {
        self.inner.contract()
    }
    fn supports_valid(&self, op: &Op, i: &[TensorDesc], o: &[TensorDesc]) -> Support {
        if self.fault == Fault::Unsupported {
            return Support::Unsupported("this test device has no kernels".into());
        }
        self.inner.supports(op, i, o)
    }
    fn precision(&self, op: &Op, i: &[TensorDesc], o: &[TensorDesc]) -> Precision {
        self.inner.precision(op, i, o)
    }
    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        if self.fault == Fault::Panic {
            panic!("kernel crashed");
        }
        self.inner.execute(op, inputs, outputs)?;
        let out = &outputs[0];
        let range = out.desc.byte_range();
        match self.fault {
            Fault::SpillPast => self.flip_byte(out.buffer, range.end),
            Fault::SpillBefore => self.flip_byte(out.buffer, range.start - 1),
            Fault::Corrupt => {
                // Move the first finite element far from any plausible result.
                let mut bytes = vec![0u8; range.len()];
                self.inner.download(out.buffer, range.start, &mut bytes)?;
                let mut desc = out.desc.clone();
                desc.offset = 0;
                let mut host = HostTensor::new(desc, bytes)?;
                let mut values = host.to_f32();
                if let Some(v) = values.iter_mut().find(|v| v.is_finite()) {
                    *v = 2.0 * *v + 1000.0f32.copysign(*v);
                }
                host.write_f32(&values)?;
                self.inner.upload(out.buffer, range.start, &host.data)
            }
            Fault::NaN => self
                .inner
                .upload(out.buffer, range.start, &f32::NAN.to_le_bytes()),
            Fault::TouchInput => {
                self.flip_byte(inputs[0].buffer, inputs[0].desc.byte_range().start)
            }
            _ => Ok(()),
        }
    }
    fn synchronize(&self) -> Result<()> {
        self.inner.synchronize()
    }
}

fn run_with(fault: Fault, ops: &[OpKind]) -> Vec<CaseResult> {
    let backend = Faulty {
        inner: CpuBackend::new(2).expect("the CPU backend opens"),
        fault,
    };
    let cases = Filter {
        ops: ops.to_vec(),
        skip_large: true,
        ..Filter::default()
    }
    .select();
    let targets = [Target {
        selector: "cpu".into(),
        backend: &backend,
    }];
    run(&cases, &targets, &[DEFAULT_SEED], &mut |_| {}).results
}

fn all(results: &[CaseResult], status: Status, detail: &str) {
    assert!(!results.is_empty());
    for r in results {
        assert_eq!(
            r.outcome.status, status,
            "{}: {:?}",
            r.case, r.outcome.detail
        );
        let d = r.outcome.detail.clone().unwrap_or_default();
        assert!(d.contains(detail), "{}: `{d}` lacks `{detail}`", r.case);
    }
}

#[test]
fn a_correct_backend_passes() {
    let results = run_with(Fault::None, &[OpKind::Add, OpKind::SwiGlu, OpKind::Argmax]);
    all(&results, Status::Pass, "");
}

#[test]
fn writes_past_or_before_the_output_are_caught() {
    let ops = [
        OpKind::Add,
        OpKind::MatMul,
        OpKind::Quantize,
        OpKind::KvWrite,
    ];
    // Outputs with padding between rows catch the stray byte inside their
    // storage; packed ones catch it in the guard.
    for r in run_with(Fault::SpillPast, &ops) {
        assert_eq!(r.outcome.status, Status::Fail, "{}", r.case);
        let d = r.outcome.detail.unwrap_or_default();
        assert!(
            d.contains("guard") || d.contains("outside the view"),
            "{}: {d}",
            r.case
        );
    }
    for r in run_with(Fault::SpillBefore, &ops) {
        assert_eq!(r.outcome.status, Status::Fail, "{}", r.case);
    }
}

#[test]
fn wrong_values_fail_with_their_numbers() {
    let results = run_with(
        Fault::Corrupt,
        &[OpKind::MatMul, OpKind::Cast, OpKind::Rope, OpKind::Argmax],
    );
    for r in &results {
        assert_eq!(r.outcome.status, Status::Fail, "{}", r.case);
        let d = r.outcome.detail.clone().unwrap_or_default();
        assert!(
            d.contains("bound") || d.contains("exact") || d.contains("NaN"),
            "{}: {d}",
            r.case
        );
    }
    assert!(results
        .iter()
        .any(|r| r.outcome.errors.is_some_and(|e| e.nmse > 0.0)));
}

#[test]
fn nan_fails_even_under_a_loose_threshold() {
    let results: Vec<CaseResult> = run_with(Fault::NaN, &[OpKind::MatMul])
        .into_iter()
        .filter(|r| r.case.contains("-> f32["))
        .collect();
    all(&results, Status::Fail, "NaN");
}

#[test]
fn modified_inputs_fail() {
    all(
        &run_with(Fault::TouchInput, &[OpKind::Silu]),
        Status::Fail,
        "input 0 was modified",
    );
}

#[test]
fn unsupported_is_reported_not_passed() {
    let results = run_with(Fault::Unsupported, &[OpKind::Rope]);
    all(&results, Status::Unsupported, "no kernels");
    let entry = BackendEntry {
        selector: "cpu".into(),
        tested: true,
        reason: None,
        device: None,
    };
    let run = Run {
        results,
        agreement: Vec::new(),
    };
    let report = Report::new(&[DEFAULT_SEED], Filter::default(), vec![entry], run);
    assert!(!report.failed());
    assert_eq!(report.summary["cpu"].pass, 0);
    assert!(report.console(false).contains("unsupported"));
    assert!(report.markdown().contains("no kernels"));
}

#[test]
fn a_panicking_kernel_is_an_error_and_the_run_goes_on() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let results = run_with(Fault::Panic, &[OpKind::Scale, OpKind::Gelu]);
    std::panic::set_hook(prev);
    all(&results, Status::Error, "kernel crashed");
}

#[test]
fn the_json_report_names_every_op() {
    let backend = CpuBackend::new(2).unwrap();
    // One small case per op keeps this quick.
    let mut cases = Vec::new();
    for kind in OpKind::ALL {
        let c = Filter {
            ops: vec![kind],
            skip_large: true,
            ..Filter::default()
        }
        .select();
        cases.push(c[0].clone());
    }
    let targets = [Target {
        selector: "cpu".into(),
        backend: &backend,
    }];
    let run = run(&cases, &targets, &[DEFAULT_SEED], &mut |_| {});
    let entry = BackendEntry {
        selector: "cpu".into(),
        tested: true,
        reason: None,
        device: Some(backend.info().clone()),
    };
    let report = Report::new(&[DEFAULT_SEED], Filter::default(), vec![entry], run);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["schema"], "glmhal.conformance/2");
    let ops: Vec<String> = json["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for kind in OpKind::ALL {
        assert!(ops.contains(&kind.name().to_string()), "{kind}");
    }
    assert_eq!(json["summary"]["cpu"]["pass"], OpKind::ALL.len());
    let first = &json["results"][0];
    assert!(first["errors"].is_object() && first["rule"].is_string());
    assert!(json["tightness"].is_array() && json["rules"].is_array());
}

/// The classic GLM port bug: rotating NeoX half-split pairs instead of
/// interleaved ones. Every single op still "works"; the model check must see it.
struct NeoxRope(CpuBackend);

impl Backend for NeoxRope {
    fn name(&self) -> &'static str {
        "cpu"
    }
    fn info(&self) -> &DeviceInfo {
        self.0.info()
    }
    fn device_id(&self) -> DeviceId {
        self.0.device_id()
    }
    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        self.0.alloc(bytes)
    }
    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        self.0.upload(dst, offset, data)
    }
    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        self.0.download(src, offset, out)
    }
    fn contract(&self) -> &'static dyn OpContract {
        self.0.contract()
    }
    fn supports_valid(&self, op: &Op, i: &[TensorDesc], o: &[TensorDesc]) -> Support {
        self.0.supports(op, i, o)
    }
    fn precision(&self, op: &Op, i: &[TensorDesc], o: &[TensorDesc]) -> Precision {
        self.0.precision(op, i, o)
    }
    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        let op = match op {
            Op::Rope { rot, theta, .. } => Op::Rope {
                rot: *rot,
                theta: *theta,
                mode: glmhal_hal::RopeMode::Neox,
            },
            other => other.clone(),
        };
        self.0.execute(&op, inputs, outputs)
    }
    fn synchronize(&self) -> Result<()> {
        self.0.synchronize()
    }
}

#[test]
fn the_model_check_passes_a_correct_backend_and_catches_a_wrong_rope() {
    use glmhal_conformance::model_check::{builtin_models, check, expect};
    let model = &builtin_models()[0];
    let expected = expect(model).unwrap();
    let good = check(
        "cpu",
        &|| Ok(Box::new(CpuBackend::new(2)?) as Box<dyn Backend>),
        &expected,
    );
    assert_eq!(good.status, Status::Pass, "{:?}", good.detail);
    assert!(good.greedy_match && good.top1_agree == good.positions);
    assert!(good.logit_bound_ratio.is_some_and(|r| r <= 1.0));
    // Two backends: their hidden states layer by layer and their logits
    // within the sum of their bounds.
    let other = check(
        "cpu-1-thread",
        &|| Ok(Box::new(CpuBackend::new(1)?) as Box<dyn Backend>),
        &expected,
    );
    let pairs = glmhal_conformance::model_check::pairs(&[good.clone(), other]);
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].layers.len(), 2, "{:?}", pairs[0].layers);
    assert!(pairs[0].logits_ratio <= 1.0, "{:?}", pairs[0]);
    assert!(pairs[0].layers.iter().all(|l| l.cosine > 0.999_999));
    let bad = check(
        "cpu",
        &|| Ok(Box::new(NeoxRope(CpuBackend::new(2)?)) as Box<dyn Backend>),
        &expected,
    );
    assert_eq!(bad.status, Status::Fail);
    // The first node outside its bound is the first rope, on its own inputs.
    let first = bad.first_node_outside.unwrap();
    assert!(first.contains("rope"), "{first}");
    assert!(bad.detail.unwrap().contains("outside their bound"));
}
