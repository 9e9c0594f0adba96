//! Bad input on the CPU backend: clear errors, never a panic.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_cpu::CpuBackend;
use glmhal_hal::{Backend, DType, HalError, Op, TensorDesc};

fn cpu() -> CpuBackend {
    CpuBackend::new(2).unwrap()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn an_impossible_allocation_is_out_of_memory() {
    let err = cpu().alloc(usize::MAX / 2).unwrap_err();
    assert!(matches!(err, HalError::OutOfMemory { .. }), "{err}");
    assert!(err.to_string().contains("out of device memory"));
    // More than the machine has, but a size the allocator would accept lazily.
    let err = cpu().alloc(1 << 46).unwrap_err();
    assert!(
        matches!(
            err,
            HalError::OutOfMemory {
                available: Some(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(cpu().alloc(0).unwrap().is_empty());
}

#[test]
fn copies_outside_a_buffer_are_rejected() {
    let b = cpu();
    let buf = b.alloc(8).unwrap();
    assert!(b
        .upload(&buf, 4, &[0; 8])
        .unwrap_err()
        .to_string()
        .contains("do not fit"));
    assert!(b.download(&buf, usize::MAX, &mut [0; 1]).is_err());
}

#[test]
fn buffers_of_another_device_are_rejected() {
    let (a, b) = (cpu(), cpu());
    let buf = a.upload_new(&f32_bytes(&[1.0, 2.0])).unwrap();
    assert!(b
        .download(&buf, 0, &mut [0; 4])
        .unwrap_err()
        .to_string()
        .contains("another device"));
    let out = b.alloc(8).unwrap();
    let d = TensorDesc::contiguous(DType::F32, &[2]);
    let err = b
        .execute(&Op::Silu, &[buf.view(d.clone())], &[out.view(d)])
        .unwrap_err();
    assert!(err.to_string().contains("another device"), "{err}");
}

#[test]
fn shape_and_dtype_errors_name_the_op() {
    let b = cpu();
    let x = b.upload_new(&f32_bytes(&[1.0; 6])).unwrap();
    let out = b.alloc(64).unwrap();
    let xd = TensorDesc::contiguous(DType::F32, &[2, 3]);
    let err = b
        .execute(
            &Op::Add,
            &[
                x.view(xd.clone()),
                x.view(TensorDesc::contiguous(DType::F32, &[3, 2])),
            ],
            &[out.view(xd.clone())],
        )
        .unwrap_err();
    assert!(
        matches!(err, HalError::Shape { .. }) && err.to_string().contains("op add"),
        "{err}"
    );
    let err = b
        .execute(
            &Op::Argmax,
            &[x.view(xd.clone())],
            &[out.view(TensorDesc::contiguous(DType::F32, &[2]))],
        )
        .unwrap_err();
    assert!(matches!(err, HalError::DType { .. }), "{err}");
    let zero = TensorDesc::contiguous(DType::F32, &[0, 3]);
    assert!(b
        .execute(&Op::Silu, &[x.view(zero.clone())], &[out.view(zero)])
        .is_err());
    let q = TensorDesc::contiguous(DType::Q8_0, &[1, 40]);
    let err = b
        .execute(
            &Op::Quantize,
            &[x.view(TensorDesc::contiguous(DType::F32, &[1, 40]))],
            &[out.view(q)],
        )
        .unwrap_err();
    assert!(err.to_string().contains("multiple of 32"), "{err}");
    let support = b.supports(
        &Op::SwiGlu,
        std::slice::from_ref(&xd),
        std::slice::from_ref(&xd),
    );
    assert!(!support.is_supported());
}

#[test]
fn views_past_the_buffer_and_in_place_ops_are_rejected() {
    let b = cpu();
    let buf = b.upload_new(&f32_bytes(&[1.0; 4])).unwrap();
    let big = TensorDesc::contiguous(DType::F32, &[8]);
    let out = b.alloc(64).unwrap();
    let err = b
        .execute(&Op::Silu, &[buf.view(big.clone())], &[out.view(big)])
        .unwrap_err();
    assert!(err.to_string().contains("buffer has 16"), "{err}");
    let d = TensorDesc::contiguous(DType::F32, &[4]);
    let err = b
        .execute(&Op::Silu, &[buf.view(d.clone())], &[buf.view(d)])
        .unwrap_err();
    assert!(err.to_string().contains("overlaps an input"), "{err}");
}

#[test]
fn out_of_range_indices_are_errors() {
    let b = cpu();
    let table = b.upload_new(&f32_bytes(&[0.0; 8])).unwrap();
    let ids = b
        .upload_new(
            &[4i32, 0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
    let out = b.alloc(64).unwrap();
    let err = b
        .execute(
            &Op::GetRows,
            &[
                table.view(TensorDesc::contiguous(DType::F32, &[4, 2])),
                ids.view(TensorDesc::contiguous(DType::I32, &[2])),
            ],
            &[out.view(TensorDesc::contiguous(DType::F32, &[2, 2]))],
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("token id 4 is outside 0..4"),
        "{err}"
    );

    let rows = b.upload_new(&f32_bytes(&[1.0; 4])).unwrap();
    let pos = b
        .upload_new(
            &[1i32, 1]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
    let cache = b.alloc(4 * 8).unwrap();
    let err = b
        .execute(
            &Op::KvWrite,
            &[
                rows.view(TensorDesc::contiguous(DType::F32, &[2, 1, 2])),
                pos.view(TensorDesc::contiguous(DType::I32, &[2])),
            ],
            &[cache.view(TensorDesc::contiguous(DType::F32, &[4, 1, 2]))],
        )
        .unwrap_err();
    assert!(err.to_string().contains("written twice"), "{err}");
}

#[test]
fn the_provider_opens_only_device_zero() {
    use glmhal_hal::BackendProvider;
    assert!(glmhal_cpu::Provider
        .open(Some(0), &glmhal_hal::BackendOptions::default())
        .is_ok());
    let err = glmhal_cpu::Provider
        .open(Some(1), &glmhal_hal::BackendOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("one device"), "{err}");
}

#[test]
fn weights_used_in_place_are_read_only() {
    let b = cpu();
    let shared: glmhal_hal::SharedBytes = std::sync::Arc::new(f32_bytes(&[1.0, 2.0, 3.0, 4.0]));
    let w = b
        .prepare_weight_shared(
            &TensorDesc::contiguous(DType::F32, &[2]),
            shared.clone(),
            8..16,
        )
        .unwrap();
    let mut back = [0u8; 8];
    b.download(&w, 0, &mut back).unwrap();
    assert_eq!(back.to_vec(), f32_bytes(&[3.0, 4.0]));
    assert!(b
        .upload(&w, 0, &[0; 4])
        .unwrap_err()
        .to_string()
        .contains("read-only"));
    let x = b.upload_new(&f32_bytes(&[1.0, 1.0])).unwrap();
    let d = TensorDesc::contiguous(DType::F32, &[2]);
    let err = b
        .execute(&Op::Silu, &[x.view(d.clone())], &[w.view(d)])
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    assert!(b
        .prepare_weight_shared(&TensorDesc::contiguous(DType::F32, &[2]), shared, 12..20)
        .is_err());
}
