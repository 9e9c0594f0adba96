//! The ACL runtime: init, devices, streams, memory, copies, error text.

use std::ffi::{c_char, c_void};

use crate::state::{code, lock, Allocation};

/// The SoC this simulator reports by default (a 910B-class part: bf16 and
/// aclnnWeightQuantBatchMatmulV2); `GLMHAL_CANN_SIM_SOC` names another, so
/// the backend's per-SoC choices can be exercised.
const SOC: &str = "Ascend910B-sim";
/// Simulated device memory.
const MEMORY: usize = 16 << 30;

macro_rules! state {
    ($g:ident) => {
        let mut guard = lock();
        let Some($g) = guard.as_mut() else {
            return code::UNINITIALIZED;
        };
    };
}

/// ACL's `aclInit`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclInit(_config: *const c_char) -> i32 {
    state!(s);
    if s.initialized {
        return s.violation(
            "aclInit",
            "called twice in one process".into(),
            code::REPEAT_INITIALIZE,
        );
    }
    s.initialized = true;
    code::SUCCESS
}

/// ACL's `aclFinalize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclFinalize() -> i32 {
    state!(s);
    if !s.initialized || s.finalized {
        return s.violation(
            "aclFinalize",
            "without a matching aclInit".into(),
            code::UNINITIALIZED,
        );
    }
    s.finalized = true;
    let leaks = [
        ("tensor(s)", s.tensors.len()),
        ("scalar(s)", s.scalars.len()),
        ("int array(s)", s.int_arrays.len()),
        ("executor(s)", s.executors.len()),
        ("stream(s)", s.streams.len()),
    ];
    let leaked: Vec<String> = leaks
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(w, n)| format!("{n} {w}"))
        .collect();
    if !leaked.is_empty() {
        return s.violation(
            "aclFinalize",
            format!("leaked {}", leaked.join(", ")),
            code::INVALID_PARAM,
        );
    }
    code::SUCCESS
}

/// ACL's `aclGetRecentErrMsg`, with the simulator's checks.
#[no_mangle]
pub extern "C" fn aclGetRecentErrMsg() -> *const c_char {
    let guard = lock();
    // The message lives in the state until the next error replaces it.
    guard
        .as_ref()
        .map_or(std::ptr::null(), |s| s.message.as_ptr())
}

/// ACL's `aclrtGetDeviceCount`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtGetDeviceCount(count: *mut u32) -> i32 {
    state!(s);
    if !s.initialized {
        return s.violation(
            "aclrtGetDeviceCount",
            "called before aclInit".into(),
            code::UNINITIALIZED,
        );
    }
    if count.is_null() {
        return s.violation(
            "aclrtGetDeviceCount",
            "count is NULL".into(),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: checked non-null; the caller provides a u32.
    unsafe { *count = 1 };
    code::SUCCESS
}

/// ACL's `aclrtSetDevice`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtSetDevice(device: i32) -> i32 {
    state!(s);
    if !s.initialized {
        return s.violation(
            "aclrtSetDevice",
            "called before aclInit".into(),
            code::UNINITIALIZED,
        );
    }
    if device != 0 {
        return s.violation(
            "aclrtSetDevice",
            format!("device {device} does not exist (1 device)"),
            code::INVALID_DEVICE,
        );
    }
    s.device = Some(device);
    code::SUCCESS
}

/// ACL's `aclrtResetDevice`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtResetDevice(device: i32) -> i32 {
    state!(s);
    if s.device != Some(device) {
        return s.violation(
            "aclrtResetDevice",
            format!("device {device} was not set"),
            code::INVALID_DEVICE,
        );
    }
    s.device = None;
    code::SUCCESS
}

/// ACL's `aclrtGetSocName`, with the simulator's checks.
#[no_mangle]
pub extern "C" fn aclrtGetSocName() -> *const c_char {
    static NAME: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        // Environment: the simulator is a C library that the CANN backend
        // loads as libascendcl; its test settings cannot come any other way.
        let name = std::env::var("GLMHAL_CANN_SIM_SOC").unwrap_or_else(|_| SOC.into());
        std::ffi::CString::new(name.replace('\0', " ")).unwrap_or_default()
    })
    .as_ptr()
}

/// ACL's `aclrtGetMemInfo`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtGetMemInfo(_attr: i32, free: *mut usize, total: *mut usize) -> i32 {
    state!(s);
    if let Err(c) = s.ready("aclrtGetMemInfo") {
        return c;
    }
    if free.is_null() || total.is_null() {
        return s.violation(
            "aclrtGetMemInfo",
            "free or total is NULL".into(),
            code::INVALID_PARAM,
        );
    }
    let used: usize = s.allocations.values().map(|a| a.data.len()).sum();
    // SAFETY: checked non-null.
    unsafe {
        *free = MEMORY.saturating_sub(used);
        *total = MEMORY;
    }
    code::SUCCESS
}

/// ACL's `aclrtCreateStream`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtCreateStream(stream: *mut *mut c_void) -> i32 {
    state!(s);
    if let Err(c) = s.ready("aclrtCreateStream") {
        return c;
    }
    if stream.is_null() {
        return s.violation(
            "aclrtCreateStream",
            "stream is NULL".into(),
            code::INVALID_PARAM,
        );
    }
    s.next_stream += 1;
    let handle = 0x5000_0000 + s.next_stream * 16;
    s.streams.insert(handle);
    // SAFETY: checked non-null.
    unsafe { *stream = handle as *mut c_void };
    code::SUCCESS
}

/// ACL's `aclrtSynchronizeStream`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtSynchronizeStream(stream: *mut c_void) -> i32 {
    state!(s);
    if !s.streams.contains(&(stream as usize)) {
        return s.violation(
            "aclrtSynchronizeStream",
            format!("unknown stream {stream:?}"),
            code::INVALID_PARAM,
        );
    }
    s.dirty_streams.remove(&(stream as usize));
    code::SUCCESS
}

/// ACL's `aclrtDestroyStream`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtDestroyStream(stream: *mut c_void) -> i32 {
    state!(s);
    if !s.streams.remove(&(stream as usize)) {
        return s.violation(
            "aclrtDestroyStream",
            format!("unknown stream {stream:?}"),
            code::INVALID_PARAM,
        );
    }
    if s.dirty_streams.remove(&(stream as usize)) {
        return s.violation(
            "aclrtDestroyStream",
            "destroyed with unsynchronized work".into(),
            code::INVALID_PARAM,
        );
    }
    code::SUCCESS
}

/// ACL's `aclrtMalloc`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtMalloc(ptr: *mut *mut c_void, size: usize, policy: i32) -> i32 {
    state!(s);
    if let Err(c) = s.ready("aclrtMalloc") {
        return c;
    }
    if ptr.is_null() || size == 0 || !(0..=2).contains(&policy) {
        return s.violation(
            "aclrtMalloc",
            format!("ptr {ptr:?}, size {size}, policy {policy}"),
            code::INVALID_PARAM,
        );
    }
    let used: usize = s.allocations.values().map(|a| a.data.len()).sum();
    if used + size > MEMORY {
        return code::BAD_ALLOC;
    }
    let data = vec![0xA5u8; size].into_boxed_slice();
    let start = data.as_ptr() as usize;
    s.allocations.insert(start, Allocation { data });
    // SAFETY: checked non-null.
    unsafe { *ptr = start as *mut c_void };
    code::SUCCESS
}

/// ACL's `aclrtFree`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtFree(ptr: *mut c_void) -> i32 {
    state!(s);
    if s.allocations.remove(&(ptr as usize)).is_none() {
        return s.violation(
            "aclrtFree",
            format!("{ptr:?} is not an allocation start"),
            code::INVALID_PARAM,
        );
    }
    code::SUCCESS
}

/// ACL's `aclrtMemcpy`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtMemcpy(
    dst: *mut c_void,
    dest_max: usize,
    src: *const c_void,
    count: usize,
    kind: i32,
) -> i32 {
    state!(s);
    if let Err(c) = s.ready("aclrtMemcpy") {
        return c;
    }
    if count > dest_max {
        return s.violation(
            "aclrtMemcpy",
            format!("count {count} exceeds destMax {dest_max}"),
            code::INVALID_PARAM,
        );
    }
    let (dst_device, src_device) = match kind {
        1 => (true, false),
        2 => (false, true),
        3 => (true, true),
        _ => {
            return s.violation(
                "aclrtMemcpy",
                format!("kind {kind} is not H2D (1), D2H (2) or D2D (3)"),
                code::INVALID_PARAM,
            )
        }
    };
    if dst_device && s.region(dst as usize, count).is_none() {
        return s.violation(
            "aclrtMemcpy",
            format!("dst {dst:?}+{count} is not inside device memory"),
            code::INVALID_PARAM,
        );
    }
    if src_device && s.region(src as usize, count).is_none() {
        return s.violation(
            "aclrtMemcpy",
            format!("src {src:?}+{count} is not inside device memory"),
            code::INVALID_PARAM,
        );
    }
    if src_device && !dst_device && !s.dirty_streams.is_empty() {
        return s.violation(
            "aclrtMemcpy",
            "device memory read by the host while a stream has unsynchronized work (call aclrtSynchronizeStream first)".into(),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: both ranges were checked (device side) or are the caller's host buffers of `count` bytes.
    unsafe { std::ptr::copy(src.cast::<u8>(), dst.cast::<u8>(), count) };
    code::SUCCESS
}
