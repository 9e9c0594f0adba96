//! wgpu buffers and bad input: byte-exact copies at any offset, clear errors, no panics.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_hal::{Availability, Backend, BackendProvider, DType, HalError, Op, TensorDesc};

fn open() -> Option<Box<dyn Backend>> {
    if let Availability::Unavailable { detail, .. } = glmhal_wgpu::Provider.probe() {
        let required = std::env::var("GLMHAL_REQUIRE_BACKENDS")
            .unwrap_or_default()
            .split(',')
            .any(|b| b == "wgpu");
        assert!(!required, "wgpu required but unavailable: {detail}");
        eprintln!("wgpu not run: {detail}");
        return None;
    }
    Some(glmhal_wgpu::Provider.open(None).unwrap())
}

#[test]
fn copies_at_unaligned_offsets_keep_neighbouring_bytes() {
    let Some(b) = open() else { return };
    let buf = b.upload_new(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]).unwrap();
    assert_eq!(buf.len(), 11);
    b.upload(&buf, 3, &[30, 40, 50, 60, 70]).unwrap();
    let mut all = [0u8; 11];
    b.download(&buf, 0, &mut all).unwrap();
    assert_eq!(all, [1, 2, 3, 30, 40, 50, 60, 70, 9, 10, 11]);
    let mut mid = [0u8; 3];
    b.download(&buf, 5, &mut mid).unwrap();
    assert_eq!(mid, [50, 60, 70]);
    assert!(b.upload(&buf, 9, &[0; 3]).is_err());
}

#[test]
fn unsupported_ops_and_impossible_buffers_are_errors() {
    let Some(b) = open() else { return };
    let x = b.upload_new(&[0; 64]).unwrap();
    let d = TensorDesc::contiguous(DType::F32, &[4, 4]);
    let out = b.alloc(64).unwrap();
    let err = b
        .execute(&Op::Cast, &[x.view(d.clone())], &[out.view(d.clone())])
        .unwrap_err();
    assert!(matches!(err, HalError::Unsupported { .. }), "{err}");
    let h = TensorDesc::contiguous(DType::F16, &[4, 4]);
    assert!(!b
        .supports(
            &Op::Silu,
            std::slice::from_ref(&h),
            std::slice::from_ref(&h)
        )
        .is_supported());
    assert!(matches!(
        b.alloc(usize::MAX / 2).unwrap_err(),
        HalError::OutOfMemory { .. }
    ));
    // A real kernel still runs after the errors.
    b.execute(
        &Op::Scale { factor: 2.0 },
        &[x.view(d.clone())],
        &[out.view(d)],
    )
    .unwrap();
    b.synchronize().unwrap();
}

#[test]
fn devices_describe_adapters() {
    if let Availability::Available { devices } = glmhal_wgpu::Provider.probe() {
        assert!(!devices.is_empty());
        assert!(devices[0]
            .features
            .iter()
            .any(|f| f.starts_with("max_storage_buffer_binding_size=")));
        assert!(glmhal_wgpu::Provider.open(Some(devices.len())).is_err());
    }
}
