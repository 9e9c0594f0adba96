//! The simulator refuses what the ACL documentation forbids, naming the call.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::ffi::{c_void, CStr};

use glmhal_cann_sim::*;

fn message() -> String {
    // SAFETY: the simulator returns NULL or a NUL-terminated string.
    let p = aclGetRecentErrMsg();
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

#[test]
fn contract_violations_are_refused_with_the_call_named() {
    unsafe {
        let mut p: *mut c_void = std::ptr::null_mut();
        // Nothing before aclInit.
        assert_ne!(aclrtMalloc(&mut p, 64, 0), 0);
        assert!(message().contains("aclrtMalloc") && message().contains("aclInit"));
        assert_eq!(aclInit(std::ptr::null()), 0);
        assert_ne!(aclInit(std::ptr::null()), 0, "aclInit twice");
        assert_eq!(aclrtSetDevice(0), 0);
        assert_ne!(aclrtSetDevice(3), 0);
        let mut stream: *mut c_void = std::ptr::null_mut();
        assert_eq!(aclrtCreateStream(&mut stream), 0);
        assert_eq!(aclrtMalloc(&mut p, 64, 0), 0);

        // A view that reaches past its storage.
        let dims = [4i64, 8];
        let strides = [8i64, 1];
        let storage = [16i64];
        let bad = aclCreateTensor(
            dims.as_ptr(),
            2,
            0,
            strides.as_ptr(),
            0,
            2,
            storage.as_ptr(),
            1,
            p,
        );
        assert!(bad.is_null());
        assert!(
            message().contains("aclCreateTensor") && message().contains("beyond"),
            "{}",
            message()
        );

        // A good tensor; an executor runs once; the host must synchronize before reading.
        let small = [2i64, 8];
        let t = aclCreateTensor(
            small.as_ptr(),
            2,
            0,
            strides.as_ptr(),
            0,
            2,
            storage.as_ptr(),
            1,
            p,
        );
        assert!(!t.is_null());
        let mut ws = 0u64;
        let mut exec: *mut c_void = std::ptr::null_mut();
        assert_eq!(aclnnSiluGetWorkspaceSize(t, t, &mut ws, &mut exec), 0);
        assert_ne!(
            aclnnSilu(std::ptr::null_mut(), 0, exec, stream),
            0,
            "workspace too small"
        );
        assert!(message().contains("workspace"));
        assert_eq!(aclnnSiluGetWorkspaceSize(t, t, &mut ws, &mut exec), 0);
        let mut w: *mut c_void = std::ptr::null_mut();
        assert_eq!(aclrtMalloc(&mut w, ws as usize, 0), 0);
        assert_eq!(aclnnSilu(w, ws, exec, stream), 0);
        assert_ne!(aclnnSilu(w, ws, exec, stream), 0, "an executor runs once");
        let mut host = [0u8; 16];
        assert_ne!(aclrtMemcpy(host.as_mut_ptr().cast(), 16, p, 16, 2), 0);
        assert!(
            message().contains("aclrtSynchronizeStream"),
            "{}",
            message()
        );
        assert_eq!(aclrtSynchronizeStream(stream), 0);
        assert_eq!(aclrtMemcpy(host.as_mut_ptr().cast(), 16, p, 16, 2), 0);

        // The ops composed attention, rope and GGUF blocks use check theirs too.
        let half = |dims: &[i64]| {
            let strides = [dims[1..].iter().product::<i64>(), 1];
            aclCreateTensor(
                dims.as_ptr(),
                dims.len() as u64,
                1,
                strides[2 - dims.len()..].as_ptr(),
                0,
                2,
                storage.as_ptr(),
                1,
                p,
            )
        };
        let x = half(&[1, 4]);
        assert!(!x.is_null());
        let (mut ws, mut exec): (u64, *mut c_void) = (0, std::ptr::null_mut());
        assert_ne!(
            aclnnRotaryPositionEmbeddingGetWorkspaceSize(x, x, x, 7, x, &mut ws, &mut exec),
            0
        );
        assert!(message().contains("RotaryPositionEmbedding") && message().contains("mode 7"));
        let mask = half(&[2, 8]);
        let zero = 0.0f32;
        let value = aclCreateScalar((&zero as *const f32).cast_mut().cast(), 0);
        assert_ne!(
            aclnnInplaceMaskedFillScalarGetWorkspaceSize(t, mask, value, &mut ws, &mut exec),
            0
        );
        assert!(message().contains("must be bool"), "{}", message());
        // Scales in another dtype than x: refused.
        assert_ne!(
            aclnnWeightQuantBatchMatmulV2GetWorkspaceSize(
                x,
                mask,
                t,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                32,
                x,
                &mut ws,
                &mut exec
            ),
            0
        );
        assert!(
            message().contains("WeightQuantBatchMatmulV2"),
            "{}",
            message()
        );
        for h in [x, mask] {
            assert_eq!(aclDestroyTensor(h), 0);
        }
        assert_eq!(aclDestroyScalar(value), 0);

        // Leaks are reported at aclFinalize.
        assert_ne!(aclFinalize(), 0);
        assert!(message().contains("leaked 1 tensor(s)"), "{}", message());
        assert_eq!(aclDestroyTensor(t), 0);
    }
    assert!(violations().len() >= 11, "{:?}", violations());
}
