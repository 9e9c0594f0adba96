//! The ACL runtime: init, devices, streams, memory, copies, error text.

use std::ffi::{c_char, c_void};

use crate::state::{code, lock, Allocation};
use crate::stream::Stream;

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
    let bytes: usize = s.allocations.values().map(|a| a.data.len()).sum();
    let leaks = [
        ("tensor(s)", s.tensors.len()),
        ("scalar(s)", s.scalars.len()),
        ("int array(s)", s.int_arrays.len()),
        ("executor(s)", s.executors.len()),
        ("stream(s)", s.streams.len()),
        ("device allocation(s)", s.allocations.len()),
    ];
    let mut leaked: Vec<String> = leaks
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(w, n)| format!("{n} {w}"))
        .collect();
    if bytes > 0 {
        leaked.push(format!("{bytes} bytes of device memory"));
    }
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
    unsafe { *count = device_count() as u32 };
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
    let devices = device_count();
    if device < 0 || device as usize >= devices {
        return s.violation(
            "aclrtSetDevice",
            format!("device {device} does not exist ({devices} device(s))"),
            code::INVALID_DEVICE,
        );
    }
    if crate::state::thread_context().is_none() {
        s.contexts += 1;
    }
    crate::state::set_thread_context(Some(device));
    code::SUCCESS
}

/// ACL's `aclrtResetDevice`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtResetDevice(device: i32) -> i32 {
    state!(s);
    if crate::state::thread_context() != Some(device) {
        return s.violation(
            "aclrtResetDevice",
            format!("device {device} was not set on this thread"),
            code::INVALID_DEVICE,
        );
    }
    crate::state::set_thread_context(None);
    s.contexts -= 1;
    code::SUCCESS
}

/// ACL's `aclrtGetSocName`: the SoC of the calling thread's device.
#[no_mangle]
pub extern "C" fn aclrtGetSocName() -> *const c_char {
    soc_name_c().as_ptr()
}

/// One SoC name per simulated device, chosen once from the environment
/// (`GLMHAL_CANN_SIM_SOC`, comma-separated for several devices) unless a
/// test chose them with [`select_soc`].
static SOC_NAMES: std::sync::Mutex<Vec<&'static std::ffi::CStr>> =
    std::sync::Mutex::new(Vec::new());

fn soc_names() -> std::sync::MutexGuard<'static, Vec<&'static std::ffi::CStr>> {
    let mut names = SOC_NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if names.is_empty() {
        // Environment: the simulator is a C library that the CANN backend
        // loads as libascendcl; its test settings cannot come any other way.
        let listed = std::env::var("GLMHAL_CANN_SIM_SOC").unwrap_or_else(|_| SOC.into());
        *names = listed.split(',').map(|n| leak_name(n.trim())).collect();
    }
    names
}

/// Devices the simulator has: one per SoC name.
fn device_count() -> usize {
    soc_names().len()
}

fn soc_name_c() -> &'static std::ffi::CStr {
    let device = crate::state::thread_context().unwrap_or(0).max(0) as usize;
    let names = soc_names();
    names
        .get(device)
        .or(names.first())
        .copied()
        .unwrap_or_default()
}

/// Names are few and live as long as the process (aclrtGetSocName hands
/// out a pointer that must stay valid).
fn leak_name(name: &str) -> &'static std::ffi::CStr {
    Box::leak(
        std::ffi::CString::new(name.replace('\0', " "))
            .unwrap_or_default()
            .into_boxed_c_str(),
    )
}

/// Reports one device of SoC `name` from now on, so one test process can
/// check each SoC's table in turn.
pub fn select_soc(name: &str) {
    *SOC_NAMES.lock().unwrap_or_else(|p| p.into_inner()) = vec![leak_name(name)];
}

/// The SoC name the simulator reports.
pub(crate) fn soc_name() -> String {
    soc_name_c().to_string_lossy().into_owned()
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
    s.streams.insert(
        handle,
        Stream::new(crate::state::thread_context().unwrap_or(0)),
    );
    // SAFETY: checked non-null.
    unsafe { *stream = handle as *mut c_void };
    code::SUCCESS
}

/// ACL's `aclrtSynchronizeStream`: runs what the stream has queued, in
/// order on its worker, and returns when it is done.
#[no_mangle]
pub unsafe extern "C" fn aclrtSynchronizeStream(stream: *mut c_void) -> i32 {
    let call = "aclrtSynchronizeStream";
    let (batch, finished) = {
        state!(s);
        if let Err(c) = s.ready(call) {
            return c;
        }
        let Some(queue) = s.streams.get_mut(&(stream as usize)) else {
            return s.violation(
                call,
                format!("unknown stream {stream:?}"),
                code::INVALID_PARAM,
            );
        };
        queue.flush()
    };
    // The worker runs without the lock: other threads may call in meanwhile.
    let errors = finished
        .recv()
        .unwrap_or_else(|_| vec!["the stream's worker stopped".into()]);
    state!(s);
    if let Some(queue) = s.streams.get_mut(&(stream as usize)) {
        queue.finished(batch);
    }
    match errors.into_iter().reduce(|a, b| format!("{a}; {b}")) {
        Some(what) => s.violation(call, what, code::INVALID_PARAM),
        None => code::SUCCESS,
    }
}

/// ACL's `aclrtDestroyStream`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclrtDestroyStream(stream: *mut c_void) -> i32 {
    state!(s);
    if let Err(c) = s.ready("aclrtDestroyStream") {
        return c;
    }
    match s.streams.get(&(stream as usize)) {
        None => s.violation(
            "aclrtDestroyStream",
            format!("unknown stream {stream:?}"),
            code::INVALID_PARAM,
        ),
        Some(q) if q.busy() => s.violation(
            "aclrtDestroyStream",
            "destroyed with unsynchronized work (synchronize it first)".into(),
            code::INVALID_PARAM,
        ),
        Some(_) => {
            s.streams.remove(&(stream as usize));
            code::SUCCESS
        }
    }
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
    if let Err(c) = s.ready("aclrtFree") {
        return c;
    }
    let len = s
        .allocations
        .get(&(ptr as usize))
        .map_or(0, |a| a.data.len());
    if s.busy_with(ptr as usize, len).is_some() {
        // aclrtFree does not wait for the device: the memory would be
        // reused under a queued op. Refused, and kept.
        return s.violation(
            "aclrtFree",
            format!("{ptr:?} ({len} bytes) is used by an op still queued on a stream (synchronize first)"),
            code::INVALID_PARAM,
        );
    }
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
    if src_device && s.busy_with(src as usize, count).is_some() {
        return s.violation(
            "aclrtMemcpy",
            format!("src {src:?}+{count} is read while an op that uses it is still queued on a stream: it may not hold the result yet (call aclrtSynchronizeStream first)"),
            code::INVALID_PARAM,
        );
    }
    if dst_device && s.busy_with(dst as usize, count).is_some() {
        return s.violation(
            "aclrtMemcpy",
            format!("dst {dst:?}+{count} is used by an op still queued on a stream: the copy would change its inputs or be overwritten (synchronize first)"),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: both ranges were checked (device side) or are the caller's host buffers of `count` bytes.
    unsafe { std::ptr::copy(src.cast::<u8>(), dst.cast::<u8>(), count) };
    code::SUCCESS
}
