//! GLM-shaped ops on every backend: mat_mul at decode (one row) and prefill
//! (64 rows, the prompt of the peer comparison; bf16 too) in the weight dtypes, reported as FLOP/s (`mat_mul`, criterion's
//! elem/s) and as GB/s of the bytes it must move (`mat_mul_bytes`: the
//! weight as stored, x and y), and decode attention over a 512-key cache
//! (FLOP/s). Each iteration enqueues the op and waits for it.

#![allow(missing_docs)] // criterion's macros define undocumented functions

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glmhal_benches::{backends, random_buffer};
use glmhal_hal::{Backend, Buffer, DType, Op, TensorDesc};

/// One prepared product on one backend.
struct Product<'a> {
    name: String,
    backend: &'a dyn Backend,
    x: (Buffer, TensorDesc),
    w: (Buffer, TensorDesc),
    y: (Buffer, TensorDesc),
    flops: u64,
    bytes: u64,
}

fn mat_mul(c: &mut Criterion) {
    let (k, n) = (2048, 2048);
    let devices = backends();
    let mut products = Vec::new();
    for (selector, backend) in &devices {
        let b: &dyn Backend = backend.as_ref();
        for (rows, dtype) in [
            (1, DType::F16),
            (1, DType::Q8_0),
            (1, DType::Q4_0),
            (64, DType::F16),
            (64, DType::Bf16),
            (64, DType::Q8_0),
            (64, DType::Q4_0),
        ] {
            let x_desc = TensorDesc::contiguous(DType::F32, &[rows, k]);
            let w_desc = TensorDesc::contiguous(dtype, &[n, k]);
            let y_desc = TensorDesc::contiguous(DType::F32, &[rows, n]);
            let op = Op::MatMul { bias: false };
            if !b
                .supports(
                    &op,
                    &[x_desc.clone(), w_desc.clone()],
                    std::slice::from_ref(&y_desc),
                )
                .is_supported()
            {
                eprintln!("bench: {selector} cannot run mat_mul with {dtype} weights");
                continue;
            }
            let (Ok(x), Ok(w), Ok(y)) = (
                random_buffer(b, DType::F32, rows * k, 1),
                random_buffer(b, dtype, n * k, 2),
                b.alloc(rows * n * 4),
            ) else {
                eprintln!("bench: {selector} could not allocate mat_mul buffers");
                continue;
            };
            // Bytes every product must move at least: the weight as stored, x and y.
            let bytes = dtype.bytes_for(n * k) + 4 * rows * (k + n);
            products.push(Product {
                name: format!("{rows}x{k}x{n}-{dtype}/{selector}"),
                backend: b,
                x: (x, x_desc),
                w: (w, w_desc),
                y: (y, y_desc),
                flops: (2 * rows * k * n) as u64,
                bytes: bytes as u64,
            });
        }
    }
    // Criterion reports one rate per benchmark: the same products twice,
    // as FLOP/s (shown as elem/s) and as decimal GB/s.
    for (group_name, per_flop) in [("mat_mul", true), ("mat_mul_bytes", false)] {
        let mut group = c.benchmark_group(group_name);
        for p in &products {
            group.throughput(if per_flop {
                Throughput::Elements(p.flops)
            } else {
                Throughput::BytesDecimal(p.bytes)
            });
            group.bench_function(&p.name, |bench| {
                bench.iter(|| {
                    p.backend
                        .execute(
                            &Op::MatMul { bias: false },
                            &[p.x.0.view(p.x.1.clone()), p.w.0.view(p.w.1.clone())],
                            &[p.y.0.view(p.y.1.clone())],
                        )
                        .and_then(|()| p.backend.synchronize())
                        .expect("mat_mul")
                })
            });
        }
        group.finish();
    }
}

fn attention(c: &mut Criterion) {
    // GLM-4-9B's decode attention: 32 query heads, 2 KV heads, head_dim 128.
    let (heads, kv, dim, keys) = (32, 2, 128, 512);
    let mut group = c.benchmark_group("attention");
    for (selector, backend) in backends() {
        let b: &dyn Backend = backend.as_ref();
        let q_desc = TensorDesc::contiguous(DType::F32, &[1, heads, dim]);
        let kv_desc = TensorDesc::contiguous(DType::F32, &[keys, kv, dim]);
        let op = Op::Attention {
            scale: (dim as f64).powf(-0.5),
            causal: true,
        };
        let (Ok(q), Ok(k), Ok(v), Ok(o)) = (
            random_buffer(b, DType::F32, heads * dim, 3),
            random_buffer(b, DType::F32, keys * kv * dim, 4),
            random_buffer(b, DType::F32, keys * kv * dim, 5),
            b.alloc(heads * dim * 4),
        ) else {
            eprintln!("bench: {selector} could not allocate attention buffers");
            continue;
        };
        group.throughput(Throughput::Elements((4 * heads * keys * dim) as u64));
        group.bench_function(format!("decode-{keys}keys/{selector}"), |bench| {
            bench.iter(|| {
                b.execute(
                    &op,
                    &[
                        q.view(q_desc.clone()),
                        k.view(kv_desc.clone()),
                        v.view(kv_desc.clone()),
                    ],
                    &[o.view(q_desc.clone())],
                )
                .and_then(|()| b.synchronize())
                .expect("attention")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = mat_mul, attention
}
criterion_main!(benches);
