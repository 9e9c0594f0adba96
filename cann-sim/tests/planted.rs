//! Each bug the CANN backend must not have, planted in a copy of the calls
//! it makes: the simulator refuses every one (or, for a missing
//! synchronization, hands back memory the op has not written yet), and
//! accepts the corrected call. One test, in order: the SoC is process-wide.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::ffi::{c_void, CStr};

use glmhal_cann_sim::*;

const F32: i32 = 0;
const F16: i32 = 1;
const INT8: i32 = 2;

fn message() -> String {
    let p = aclGetRecentErrMsg();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the simulator returns NULL or a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Device memory of `bytes` bytes.
unsafe fn malloc(bytes: usize) -> *mut c_void {
    let mut p: *mut c_void = std::ptr::null_mut();
    assert_eq!(unsafe { aclrtMalloc(&mut p, bytes, 0) }, 0, "{}", message());
    p
}

/// A row-major view `dims` of `dtype` at the start of `p`, whose storage
/// is `storage` elements.
unsafe fn tensor(p: *mut c_void, dtype: i32, dims: &[i64], storage: i64) -> *mut c_void {
    let mut strides = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    let t = unsafe {
        aclCreateTensor(
            dims.as_ptr(),
            dims.len() as u64,
            dtype,
            strides.as_ptr(),
            0,
            2,
            [storage].as_ptr(),
            1,
            p,
        )
    };
    assert!(!t.is_null(), "{}", message());
    t
}

/// Runs the second phase of `exec` with a fresh workspace of the size asked for.
unsafe fn launch(
    run: unsafe extern "C" fn(*mut c_void, u64, *mut c_void, *mut c_void) -> i32,
    (ws, exec): (u64, *mut c_void),
    stream: *mut c_void,
) -> *mut c_void {
    let w = unsafe { malloc(ws as usize) };
    assert_eq!(unsafe { run(w, ws, exec, stream) }, 0, "{}", message());
    w
}

fn host_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

unsafe fn upload(dst: *mut c_void, bytes: &[u8]) -> i32 {
    unsafe { aclrtMemcpy(dst, bytes.len(), bytes.as_ptr().cast(), bytes.len(), 1) }
}

unsafe fn download(src: *mut c_void, len: usize) -> (i32, Vec<u8>) {
    let mut out = vec![0u8; len];
    let code = unsafe { aclrtMemcpy(out.as_mut_ptr().cast(), len, src, len, 2) };
    (code, out)
}

#[test]
fn every_planted_bug_is_refused() {
    unsafe {
        assert_eq!(aclInit(std::ptr::null()), 0);
        assert_eq!(aclrtSetDevice(0), 0);
        let mut stream: *mut c_void = std::ptr::null_mut();
        assert_eq!(aclrtCreateStream(&mut stream), 0);
        let (x_mem, y_mem) = (malloc(64), malloc(64));
        let x = tensor(x_mem, F32, &[2, 8], 16);
        let y = tensor(y_mem, F32, &[2, 8], 16);
        assert_eq!(upload(x_mem, &host_f32(&[1.0; 16])), 0);
        let silu = || {
            let (mut ws, mut exec) = (0u64, std::ptr::null_mut());
            assert_eq!(aclnnSiluGetWorkspaceSize(x, y, &mut ws, &mut exec), 0);
            (ws, exec)
        };

        // Missing synchronization: the op has only been queued, so the host
        // read is refused and the memory does not hold the result yet.
        let w = launch(aclnnSilu, silu(), stream);
        assert_ne!(download(y_mem, 64).0, 0);
        assert!(
            message().contains("aclrtSynchronizeStream"),
            "{}",
            message()
        );
        assert_ne!(
            std::slice::from_raw_parts(y_mem as *const u8, 4),
            &host_f32(&[0.731_058_6])[..]
        );
        // A buffer freed, or a host copy into an input, while the op is queued.
        assert_ne!(aclrtFree(x_mem), 0);
        assert!(message().contains("queued"), "{}", message());
        assert_ne!(upload(x_mem, &host_f32(&[2.0; 16])), 0);
        assert!(message().contains("queued"), "{}", message());
        assert_eq!(aclrtSynchronizeStream(stream), 0, "{}", message());
        let (code, bytes) = download(y_mem, 64);
        assert_eq!(code, 0);
        assert_eq!(&bytes[..4], &host_f32(&[0.731_058_6])[..]);
        // The workspace is poisoned after the op: nothing may read it later.
        assert!(std::slice::from_raw_parts(w as *const u8, 16)
            .iter()
            .all(|b| *b == 0xFF));
        assert_eq!(aclrtFree(w), 0);
        // A workspace that is also one of the op's tensors.
        let big = malloc(1 << 16);
        let xb = tensor(big, F32, &[2, 8], 1 << 14);
        let (mut ws, mut exec) = (0u64, std::ptr::null_mut());
        assert_eq!(aclnnSiluGetWorkspaceSize(xb, y, &mut ws, &mut exec), 0);
        assert_ne!(aclnnSilu(big, ws, exec, stream), 0);
        assert!(message().contains("overlaps"), "{}", message());
        assert_eq!(aclDestroyTensor(xb), 0);
        assert_eq!(aclrtFree(big), 0);

        // KEEP_DTYPE with f32 inputs on a 310P: refused; ALLOW_FP32_DOWN_PRECISION
        // computes in f16 (1 + 2⁻¹² rounds to 1).
        runtime_soc("Ascend310P3");
        let (a_mem, b_mem, c_mem) = (malloc(64), malloc(64), malloc(16));
        let a = tensor(a_mem, F32, &[2, 8], 16);
        let b = tensor(b_mem, F32, &[8, 2], 16);
        let c = tensor(c_mem, F32, &[2, 2], 4);
        assert_eq!(upload(a_mem, &host_f32(&[1.0 + 2f32.powi(-12); 16])), 0);
        assert_eq!(upload(b_mem, &host_f32(&[1.0; 16])), 0);
        let (mut ws, mut exec) = (0u64, std::ptr::null_mut());
        assert_ne!(aclnnMmGetWorkspaceSize(a, b, c, 0, &mut ws, &mut exec), 0);
        assert!(message().contains("KEEP_DTYPE"), "{}", message());
        assert_eq!(aclnnMmGetWorkspaceSize(a, b, c, 1, &mut ws, &mut exec), 0);
        let w = launch(aclnnMm, (ws, exec), stream);
        assert_eq!(aclrtSynchronizeStream(stream), 0);
        assert_eq!(download(c_mem, 16).1, host_f32(&[8.0; 4]));
        assert_eq!(aclrtFree(w), 0);

        // aclnnRotaryPositionEmbedding on a 910A (and RmsNorm there, LayerNorm
        // on a 310P): refused; the same call on a 910B runs.
        let r = tensor(a_mem, F32, &[1, 2, 1, 8], 16);
        let rope = |exec: &mut *mut c_void| {
            let mut ws = 0u64;
            let code = aclnnRotaryPositionEmbeddingGetWorkspaceSize(r, r, r, 1, r, &mut ws, exec);
            (code, ws)
        };
        runtime_soc("Ascend910A");
        let mut exec = std::ptr::null_mut();
        assert_ne!(rope(&mut exec).0, 0);
        assert!(message().contains("Atlas training series"), "{}", message());
        let (mut ws, gamma) = (0u64, tensor(b_mem, F32, &[8], 16));
        assert_ne!(
            aclnnRmsNormGetWorkspaceSize(x, gamma, 1e-6, y, c, &mut ws, &mut exec),
            0
        );
        assert!(
            message().contains("aclnnRmsNorm is not supported"),
            "{}",
            message()
        );
        runtime_soc("Ascend910B3");
        let (code, ws) = rope(&mut exec);
        assert_eq!(code, 0, "{}", message());
        let w = launch(aclnnRotaryPositionEmbedding, (ws, exec), stream);
        assert_eq!(aclrtSynchronizeStream(stream), 0);
        assert_eq!(aclrtFree(w), 0);

        // aclnnWeightQuantBatchMatmulV2 wider than 65535, or with a group of
        // 32 where K is 32: refused; 65535 wide runs.
        let n = 65_536i64;
        let (wq_mem, s_mem, xq_mem, yq_mem) = (
            malloc(64 * n as usize),
            malloc(4 * n as usize),
            malloc(128),
            malloc(2 * n as usize),
        );
        let xq = tensor(xq_mem, F16, &[1, 64], 64);
        let quant = |n: i64, k: i64, group: i32, exec: &mut *mut c_void| {
            let weight = tensor(wq_mem, INT8, &[k, n], 64 * 65_536);
            let scale = tensor(s_mem, F16, &[k / 32, n], 2 * 65_536);
            let out = tensor(yq_mem, F16, &[1, n], 65_536);
            let xk = if k == 64 {
                xq
            } else {
                tensor(xq_mem, F16, &[1, k], 64)
            };
            let none = std::ptr::null();
            let mut ws = 0u64;
            let code = aclnnWeightQuantBatchMatmulV2GetWorkspaceSize(
                xk, weight, scale, none, none, none, none, group, out, &mut ws, exec,
            );
            for t in [weight, scale, out] {
                assert_eq!(aclDestroyTensor(t), 0);
            }
            if k != 64 {
                assert_eq!(aclDestroyTensor(xk), 0);
            }
            (code, ws)
        };
        let mut exec = std::ptr::null_mut();
        assert_ne!(quant(n, 64, 32, &mut exec).0, 0);
        assert!(message().contains("65535"), "{}", message());
        assert_ne!(quant(n - 1, 32, 32, &mut exec).0, 0);
        assert!(message().contains("antiquantGroupSize"), "{}", message());
        let (code, ws) = quant(n - 1, 64, 32, &mut exec);
        assert_eq!(code, 0, "{}", message());
        let w = launch(aclnnWeightQuantBatchMatmulV2, (ws, exec), stream);
        assert_eq!(aclrtSynchronizeStream(stream), 0);
        assert_eq!(aclrtFree(w), 0);

        // A thread that never set a device has no context.
        let code = std::thread::spawn(|| {
            let mut p: *mut c_void = std::ptr::null_mut();
            aclrtMalloc(&mut p, 64, 0)
        })
        .join()
        .unwrap();
        assert_eq!(code, 107_002);
        assert!(message().contains("no context"), "{}", message());

        // A stream never destroyed is a leak at aclFinalize.
        for t in [x, y, a, b, c, r, gamma, xq] {
            assert_eq!(aclDestroyTensor(t), 0);
        }
        for p in [
            x_mem, y_mem, a_mem, b_mem, c_mem, wq_mem, s_mem, xq_mem, yq_mem,
        ] {
            assert_eq!(aclrtFree(p), 0, "{}", message());
        }
        assert_ne!(aclFinalize(), 0);
        assert_eq!(message(), "aclFinalize: leaked 1 stream(s)");
    }
}

fn runtime_soc(name: &str) {
    select_soc(name);
}
