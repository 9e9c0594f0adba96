//! GLM-shaped ops on every backend: mat_mul at decode (one row) and prefill
//! (32 rows) in the weight dtypes, and decode attention over a 512-key cache.
//! Each iteration enqueues the op and waits for it.

#![allow(missing_docs)] // criterion's macros define undocumented functions

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glmhal_benches::{backends, random_buffer};
use glmhal_hal::{Backend, DType, Op, TensorDesc};

fn mat_mul(c: &mut Criterion) {
    let (k, n) = (2048, 2048);
    let mut group = c.benchmark_group("mat_mul");
    for (selector, backend) in backends() {
        let b: &dyn Backend = backend.as_ref();
        for (rows, dtype) in [
            (1, DType::F16),
            (1, DType::Q8_0),
            (1, DType::Q4_0),
            (32, DType::F16),
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
            group.throughput(Throughput::Elements((2 * rows * k * n) as u64));
            group.bench_function(format!("{rows}x{k}x{n}-{dtype}/{selector}"), |bench| {
                bench.iter(|| {
                    b.execute(
                        &op,
                        &[x.view(x_desc.clone()), w.view(w_desc.clone())],
                        &[y.view(y_desc.clone())],
                    )
                    .and_then(|()| b.synchronize())
                    .expect("mat_mul")
                })
            });
        }
    }
    group.finish();
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
