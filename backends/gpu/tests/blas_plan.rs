//! The column-major GEMM that `plan_gemm` hands to cuBLAS / rocBLAS computes
//! what the reference computes, for every mat_mul and batched_mat_mul case
//! of the conformance suite it accepts: the call is executed here with the
//! BLAS definition (`C = op(A)·op(B) + beta·C`, column-major, leading
//! dimensions, batch strides, f32 accumulation), so a wrong flag, leading
//! dimension or offset fails without a GPU.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_conformance::metrics::{compare, Expected};
use glmhal_conformance::{Filter, DEFAULT_SEED};
use glmhal_ops::bounds::Rule;
use std::sync::{Arc, Mutex};

use glmhal_gpu::backend::GpuBackend;
use glmhal_gpu::blas::{plan_gemm, Gemm, Operand, VendorBlas};
use glmhal_gpu::driver::{Driver, KernelArg};
use glmhal_gpu::DevicePtr;
use glmhal_gpu::KernelFile;
use glmhal_hal::quant::{read_scalar, write_scalar};
use glmhal_hal::{
    Backend, Buffer, DType, DeviceInfo, HalError, HostTensor, Op, OpKind, Result, TensorDesc,
    TensorRef,
};

/// Element `(row, col)` of `op(X)` for a column-major operand whose bytes
/// start at `data`.
fn element(g: &Gemm, x: &Operand, data: &[u8], batch: usize, row: usize, col: usize) -> f32 {
    let (r, c) = if x.transpose { (col, row) } else { (row, col) };
    read_scalar(
        g.inputs,
        data,
        batch * x.batch_stride as usize + r + c * x.ld as usize,
    )
}

/// The BLAS definition of a strided-batched GEMM with alpha = 1, on the
/// bytes at each operand's address.
fn blas_gemm(g: &Gemm, a: &[u8], b: &[u8], c: &mut [u8]) {
    let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
    for p in 0..g.batch as usize {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0f32;
                for l in 0..k {
                    acc += element(g, &g.a, a, p, i, l) * element(g, &g.b, b, p, l, j);
                }
                let at = p * g.c.batch_stride as usize + i + j * g.c.ld as usize;
                let old = if g.beta != 0.0 {
                    g.beta * read_scalar(g.output, c, at)
                } else {
                    0.0
                };
                write_scalar(g.output, c, at, acc + old);
            }
        }
    }
}

/// The case's output `out` within the bounds `precision` gives (`what`
/// names the call in the message).
fn assert_within_bounds(
    case: &glmhal_conformance::Case,
    prepared: &glmhal_conformance::runner::Prepared,
    precision: &glmhal_hal::Precision,
    out: &HostTensor,
    what: &dyn std::fmt::Debug,
) {
    let bounds = prepared.bounds(case, precision).unwrap();
    let expected = Expected {
        rule: Rule::Bounded,
        exact: &prepared.exact,
        rounded: &prepared.rounded,
        bounds: &bounds,
        output: glmhal_hal::Arithmetic::of(out.desc.dtype),
    };
    let (errors, mismatch) = compare(&expected, &out.to_f64());
    assert!(mismatch.is_none(), "{}: {what:?}: {errors:?}", case.id);
}

#[test]
fn blas_calls_agree_with_the_reference_on_every_case_they_accept() {
    let mut mapped = 0;
    let mut transposed_a = 0;
    let mut with_bias = 0;
    let mut batched = 0;
    for case in Filter::default().select() {
        if !matches!(case.kind(), OpKind::MatMul | OpKind::BatchedMatMul) {
            continue;
        }
        let prepared = glmhal_conformance::runner::prepare(&case, case.seed(DEFAULT_SEED)).unwrap();
        let ins: Vec<TensorDesc> = prepared.inputs.iter().map(|t| t.desc.clone()).collect();
        let out_desc = prepared.initial[0].desc.clone();
        let Some(g) = plan_gemm(&case.op, &ins, &out_desc) else {
            continue;
        };
        mapped += 1;
        transposed_a += usize::from(!g.a.transpose);
        batched += usize::from(g.batch > 1);
        let mut out = prepared.initial[0].clone();
        if let Some(fill) = &g.bias_fill {
            with_bias += 1;
            let bias = HostTensor::new(fill.clone(), prepared.inputs[2].data.clone()).unwrap();
            glmhal_ops::reference::execute(&Op::Cast, &[bias], std::slice::from_mut(&mut out))
                .unwrap();
        }
        let at = |x: &Operand| &prepared.inputs[x.tensor].data[x.offset as usize..];
        blas_gemm(&g, at(&g.a), at(&g.b), &mut out.data[g.c.offset as usize..]);
        let precision =
            glmhal_gpu::plan::precision(&case.op, &ins, std::slice::from_ref(&out_desc));
        assert_within_bounds(&case, &prepared, &precision, &out, &g);
        // Outside the view nothing changed (padding, guard rows).
        for (i, inside) in out.view_mask().iter().enumerate() {
            assert!(
                *inside || out.data[i] == prepared.initial[0].data[i],
                "{}: byte {i} outside the output view was written",
                case.id
            );
        }
    }
    eprintln!("{mapped} cases mapped ({transposed_a} with an untransposed first operand, {with_bias} with bias, {batched} batched)");
    assert!(mapped >= 20, "only {mapped} cases mapped to BLAS");
    assert!(transposed_a >= 1 && with_bias >= 1 && batched >= 1);
}

/// The staged prefill products (activations cast, quantized weights
/// dequantized to f16 panels, then GEMMs on f16/bf16 operands) compute what
/// the reference computes within the bound of their declared precision
/// (operands rounded to the staging format), on every mat_mul case they
/// take: the casts run with the reference's cast, the GEMMs with the BLAS
/// definition.
#[test]
fn staged_products_agree_with_the_reference_within_their_declared_precision() {
    use glmhal_gpu::plan::Context;
    use glmhal_gpu::staged_gemm::{plan_staged, staged_precision, Step};
    let (mut staged, mut quantized) = (0, 0);
    for case in Filter::default().select() {
        if case.kind() != OpKind::MatMul {
            continue;
        }
        let prepared = glmhal_conformance::runner::prepare(&case, case.seed(DEFAULT_SEED)).unwrap();
        let ins: Vec<TensorDesc> = prepared.inputs.iter().map(|t| t.desc.clone()).collect();
        let out_desc = prepared.initial[0].desc.clone();
        let Some(plan) = plan_staged(&case.op, &ins, &out_desc, Context::warp(32)).unwrap() else {
            continue;
        };
        staged += 1;
        quantized += usize::from(ins[1].dtype.is_quantized());
        let (m, k) = (ins[0].shape[0], ins[0].shape[1]);
        // The workspace regions: the cast activations, then the current panel.
        let x = &prepared.inputs[0];
        let mut acts = HostTensor::zeros(plan.inputs, &[m, k]).unwrap();
        glmhal_ops::reference::execute(
            &Op::Cast,
            std::slice::from_ref(x),
            std::slice::from_mut(&mut acts),
        )
        .unwrap();
        let mut out = prepared.initial[0].clone();
        let mut panel = Vec::new();
        for step in &plan.steps {
            match step {
                Step::Launch(l) if l.entry.starts_with("dequantize_rows_") => {
                    let [first, count] = [l.args[3].clone(), l.args[4].clone()].map(|a| match a {
                        glmhal_gpu::plan::Arg::U32(v) => v as usize,
                        other => panic!("{other:?}"),
                    });
                    let w = &prepared.inputs[1];
                    let rows =
                        HostTensor::new(w.desc.narrowed(0, first, count).unwrap(), w.data.clone())
                            .unwrap();
                    let mut p = HostTensor::zeros(DType::F16, &[count, k]).unwrap();
                    glmhal_ops::reference::execute(
                        &Op::Cast,
                        &[rows],
                        std::slice::from_mut(&mut p),
                    )
                    .unwrap();
                    panel = p.data;
                }
                Step::Launch(l) => assert!(l.entry.starts_with("unary_"), "{}", l.entry),
                Step::Gemm(g) => {
                    if let Some(fill) = &g.bias_fill {
                        let bias =
                            HostTensor::new(fill.clone(), prepared.inputs[2].data.clone()).unwrap();
                        glmhal_ops::reference::execute(
                            &Op::Cast,
                            &[bias],
                            std::slice::from_mut(&mut out),
                        )
                        .unwrap();
                    }
                    let o = ins.len();
                    let at = |t: usize| -> Vec<u8> {
                        if t == o + 1 {
                            acts.data.clone()
                        } else if t == o + 2 {
                            panel.clone()
                        } else {
                            prepared.inputs[t].data.clone()
                        }
                    };
                    let (a, b) = (at(g.a.tensor), at(g.b.tensor));
                    assert_eq!(g.c.tensor, o);
                    blas_gemm(
                        g,
                        &a[g.a.offset as usize..],
                        &b[g.b.offset as usize..],
                        &mut out.data[g.c.offset as usize..],
                    );
                }
            }
        }
        let precision = staged_precision(&case.op, &ins, &out_desc).unwrap();
        assert_within_bounds(&case, &prepared, &precision, &out, &plan);
    }
    eprintln!("{staged} cases staged ({quantized} with quantized weights)");
    assert!(
        staged >= 5 && quantized >= 2,
        "{staged} staged, {quantized} quantized"
    );
}

/// Allocations by base address.
type Memory = Arc<Mutex<Vec<(DevicePtr, Vec<u8>)>>>;

/// Device memory in host vectors, products through [`blas_gemm`], and no
/// kernel compiler: a product that reaches the kernels fails with "no compiler".
struct HostRuntime {
    memory: Memory,
    next: Mutex<DevicePtr>,
    blas: HostBlas,
}

struct HostBlas {
    memory: Memory,
    calls: Mutex<usize>,
}

/// The region holding `ptr` and the offset of `ptr` in it.
fn locate(regions: &[(DevicePtr, Vec<u8>)], ptr: DevicePtr) -> (usize, usize) {
    let i = regions
        .iter()
        .position(|(base, v)| ptr >= *base && ptr <= base + v.len() as u64)
        .unwrap();
    (i, (ptr - regions[i].0) as usize)
}

impl VendorBlas for HostBlas {
    fn describe(&self) -> String {
        "host BLAS".into()
    }

    fn gemm(&self, g: &Gemm, a: DevicePtr, b: DevicePtr, c: DevicePtr) -> Result<()> {
        *self.calls.lock().unwrap() += 1;
        let mut regions = self.memory.lock().unwrap();
        let ((ia, oa), (ib, ob), (ic, oc)) = (
            locate(&regions, a),
            locate(&regions, b),
            locate(&regions, c),
        );
        let (a, b) = (regions[ia].1.clone(), regions[ib].1.clone());
        blas_gemm(g, &a[oa..], &b[ob..], &mut regions[ic].1[oc..]);
        Ok(())
    }
}

impl Driver for HostRuntime {
    fn backend(&self) -> &'static str {
        "cuda"
    }
    fn warp_size(&self) -> u32 {
        32
    }
    fn compile(&self, file: KernelFile) -> Result<Vec<u8>> {
        Err(HalError::backend("host", file.name, "no compiler"))
    }
    fn load_module(&self, _: &[u8]) -> Result<usize> {
        Ok(0)
    }
    fn function(&self, _: usize, _: &str) -> Result<usize> {
        Ok(0)
    }
    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        let mut next = self.next.lock().unwrap();
        let ptr = *next;
        *next += (bytes as u64).div_ceil(4096) * 4096 + 4096;
        self.memory.lock().unwrap().push((ptr, vec![0; bytes]));
        Ok(ptr)
    }
    fn free(&self, ptr: DevicePtr) {
        self.memory.lock().unwrap().retain(|(base, _)| *base != ptr);
    }
    fn upload(&self, dst: DevicePtr, offset: usize, data: &[u8]) -> Result<u64> {
        let mut regions = self.memory.lock().unwrap();
        let (i, o) = locate(&regions, dst + offset as u64);
        regions[i].1[o..o + data.len()].copy_from_slice(data);
        Ok(1)
    }
    fn download(&self, src: DevicePtr, offset: usize, out: &mut [u8]) -> Result<()> {
        let regions = self.memory.lock().unwrap();
        let (i, o) = locate(&regions, src + offset as u64);
        out.copy_from_slice(&regions[i].1[o..o + out.len()]);
        Ok(())
    }
    fn launch(&self, _: usize, _: [u32; 3], _: u32, _: &[KernelArg<'_>]) -> Result<()> {
        Ok(())
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn blas(&self) -> Option<&dyn VendorBlas> {
        Some(&self.blas)
    }
}

fn host_backend() -> (Arc<HostRuntime>, GpuBackend) {
    let memory = Arc::new(Mutex::new(Vec::new()));
    let runtime = Arc::new(HostRuntime {
        memory: memory.clone(),
        next: Mutex::new(1 << 20),
        blas: HostBlas {
            memory,
            calls: Mutex::new(0),
        },
    });
    let info = DeviceInfo::new("cuda", 0, "test", "host", "sm_80");
    let backend = GpuBackend::new(runtime.clone(), info, true).unwrap();
    (runtime, backend)
}

#[test]
fn float_products_reach_the_vendor_blas_and_quantized_ones_the_kernels() {
    let (runtime, backend) = host_backend();
    let x = HostTensor::from_f32(
        DType::F32,
        &[2, 4],
        &[1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0],
    )
    .unwrap();
    let w = HostTensor::from_f32(
        DType::F32,
        &[3, 4],
        &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 0.5, 0.5],
    )
    .unwrap();
    let y_desc = TensorDesc::contiguous(DType::F32, &[2, 3]);
    let buffers: Vec<Buffer> = [&x, &w]
        .iter()
        .map(|t| {
            let b = backend.alloc(t.data.len()).unwrap();
            backend.upload(&b, 0, &t.data).unwrap();
            b
        })
        .collect();
    let y = backend.alloc(24).unwrap();
    let op = Op::MatMul { bias: false };
    backend
        .execute(
            &op,
            &[
                TensorRef {
                    buffer: &buffers[0],
                    desc: x.desc.clone(),
                },
                TensorRef {
                    buffer: &buffers[1],
                    desc: w.desc.clone(),
                },
            ],
            &[TensorRef {
                buffer: &y,
                desc: y_desc.clone(),
            }],
        )
        .unwrap();
    let mut bytes = vec![0u8; 24];
    backend.download(&y, 0, &mut bytes).unwrap();
    let got = HostTensor::new(y_desc, bytes).unwrap().to_f32();
    assert_eq!(got, vec![1.0, 5.0, 5.0, -1.0, 0.5, 0.75]);
    assert_eq!(*runtime.blas.calls.lock().unwrap(), 1);

    // A Q8_0 weight is the int8 kernels' work: the (absent) compiler is asked.
    let q = TensorDesc::contiguous(DType::Q8_0, &[3, 32]);
    let qb = backend.alloc(q.dtype.bytes_for(96)).unwrap();
    let xq = TensorDesc::contiguous(DType::F32, &[2, 32]);
    let xb = backend.alloc(256).unwrap();
    let err = backend
        .execute(
            &op,
            &[
                TensorRef {
                    buffer: &xb,
                    desc: xq,
                },
                TensorRef {
                    buffer: &qb,
                    desc: q,
                },
            ],
            &[TensorRef {
                buffer: &y,
                desc: TensorDesc::contiguous(DType::F32, &[2, 3]),
            }],
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("no compiler"), "{err}");
    assert_eq!(*runtime.blas.calls.lock().unwrap(), 1);
}
