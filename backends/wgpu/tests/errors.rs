//! wgpu bad input: clear errors, no panics; the buffer pool and one
//! submission per step. (Copies at any offset and out-of-range ids are in
//! the shared suite, `backend_tests!`.)

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use glmhal_hal::{
    Availability, Backend, BackendProvider, Buffer, DType, HalError, Op, OpCall, TensorDesc,
};

#[test]
fn unsupported_ops_and_impossible_buffers_are_errors() {
    let Some(b) = glmhal_conformance::testing::open_for_test(&glmhal_wgpu::Provider) else {
        return;
    };
    let x = b.upload_new(&[0; 64]).unwrap();
    let d = TensorDesc::contiguous(DType::F32, &[4, 4]);
    let out = b.alloc(64).unwrap();
    // A head_dim beyond what the attention kernel holds: unsupported, with the reason and adapter.
    let q = TensorDesc::contiguous(DType::F32, &[1, 1, 512]);
    let big = b.upload_new(&vec![0u8; 2048]).unwrap();
    let big_out = b.alloc(2048).unwrap();
    let err = b
        .execute(
            &Op::Attention {
                scale: 1.0,
                causal: true,
            },
            &[
                big.view(q.clone()),
                big.view(q.clone()),
                big.view(q.clone()),
            ],
            &[big_out.view(q.clone())],
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, HalError::Unsupported { .. }), "{err}");
    assert!(
        text.contains("wgpu:") && text.contains("head_dim"),
        "{text}"
    );
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
    if let Availability::Available { devices } =
        glmhal_wgpu::Provider.probe(&glmhal_hal::BackendOptions::default())
    {
        assert!(!devices.is_empty());
        assert!(devices[0]
            .features
            .iter()
            .any(|f| f.starts_with("max_storage_buffer_binding_size=")));
        assert!(glmhal_wgpu::Provider
            .open(Some(devices.len()), &glmhal_hal::BackendOptions::default())
            .is_err());
    }
}

#[test]
fn freed_buffers_are_reused_and_a_step_is_one_submission() {
    if !glmhal_conformance::testing::should_run(&glmhal_wgpu::Provider) {
        return;
    }
    let b = glmhal_wgpu::open_with(None, &glmhal_wgpu::WgpuOptions::default()).unwrap();
    let before = b.pooled_bytes();
    drop(b.alloc(4000).unwrap());
    assert_eq!(b.pooled_bytes(), before + 4000);
    let again = b.alloc(4000).unwrap();
    assert_eq!(b.pooled_bytes(), before);

    let d = TensorDesc::contiguous(DType::F32, &[1000]);
    let x = b.upload_new(&1.5f32.to_le_bytes().repeat(1000)).unwrap();
    let y = b.alloc(4000).unwrap();
    fn scale<'a>(d: &TensorDesc, from: &'a Buffer, to: &'a Buffer) -> OpCall<'a> {
        OpCall {
            op: Op::Scale { factor: 2.0 },
            inputs: [from.view(d.clone())].into_iter().collect(),
            outputs: [to.view(d.clone())].into_iter().collect(),
        }
    }
    let submitted = b.submissions();
    b.execute_step(&[
        scale(&d, &x, &y),
        scale(&d, &y, &again),
        scale(&d, &again, &y),
    ])
    .unwrap();
    assert_eq!(b.submissions(), submitted + 1);
    let mut out = vec![0u8; 4000];
    b.download(&y, 0, &mut out).unwrap();
    assert!(out.chunks(4).all(|w| w == 12.0f32.to_le_bytes()));
}
