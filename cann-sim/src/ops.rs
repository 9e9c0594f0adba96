//! aclnn ops in the two-phase convention: `aclnnXxxGetWorkspaceSize` checks
//! the arguments and returns a workspace size and a single-use executor;
//! `aclnnXxx` checks the workspace and stream and computes on the host in
//! f64, rounding once to the output dtype. The stream is left marked as
//! having unsynchronized work until `aclrtSynchronizeStream`.

use std::ffi::c_void;

use crate::state::{code, lock, State};
use crate::tensor::{dtype, get, get_scalar, SimTensor};

/// What an executor will compute.
enum Work {
    /// out = f(a, b) with numpy broadcasting.
    Binary {
        a: SimTensor,
        b: SimTensor,
        out: SimTensor,
        f: fn(f64, f64) -> f64,
    },
    /// out = f(x).
    Unary {
        x: SimTensor,
        out: SimTensor,
        f: fn(f64, f64) -> f64,
        k: f64,
    },
}

struct Executor {
    op: &'static str,
    workspace: u64,
    work: Work,
}

/// Workspace every op asks for, so the backend's workspace path is exercised.
const WORKSPACE: u64 = 512;

fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let x = if i + a.len() >= n {
                a[i + a.len() - n]
            } else {
                1
            };
            let y = if i + b.len() >= n {
                b[i + b.len() - n]
            } else {
                1
            };
            match (x, y) {
                _ if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Stores a new executor and its workspace size for the caller.
unsafe fn hand_out(
    s: &mut State,
    call: &str,
    work: Work,
    op: &'static str,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    if ws.is_null() || exec.is_null() {
        return s.violation(
            call,
            "workspaceSize or executor is NULL".into(),
            code::INVALID_PARAM,
        );
    }
    let p = Box::into_raw(Box::new(Executor {
        op,
        workspace: WORKSPACE,
        work,
    })) as usize;
    s.executors.insert(p);
    // SAFETY: both checked non-null.
    unsafe {
        *ws = WORKSPACE;
        *exec = p as *mut c_void;
    }
    code::SUCCESS
}

// The arguments mirror the C entry points they serve.
#[allow(clippy::too_many_arguments)]
unsafe fn binary(
    call: &str,
    a: *const c_void,
    b: *const c_void,
    out: *const c_void,
    f: fn(f64, f64) -> f64,
    op: &'static str,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let (a, b, o) = match (
        get(s, call, "self", a),
        get(s, call, "other", b),
        get(s, call, "out", out),
    ) {
        (Ok(a), Ok(b), Ok(o)) => (a, b, o),
        (Err(c), _, _) | (_, Err(c), _) | (_, _, Err(c)) => return c,
    };
    match broadcast(&a.dims, &b.dims) {
        Some(shape) if shape == o.dims => {}
        other => {
            return s.violation(
                call,
                format!(
                    "self {:?} and other {:?} broadcast to {other:?}, but out is {:?}",
                    a.dims, b.dims, o.dims
                ),
                code::INVALID_PARAM,
            )
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, Work::Binary { a, b, out: o, f }, op, ws, exec) }
}

#[allow(clippy::too_many_arguments)]
unsafe fn unary(
    call: &str,
    x: *const c_void,
    out: *const c_void,
    f: fn(f64, f64) -> f64,
    k: f64,
    op: &'static str,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let (x, o) = match (get(s, call, "self", x), get(s, call, "out", out)) {
        (Ok(x), Ok(o)) => (x, o),
        (Err(c), _) | (_, Err(c)) => return c,
    };
    if x.dims != o.dims {
        return s.violation(
            call,
            format!("self {:?} and out {:?} differ in shape", x.dims, o.dims),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, Work::Unary { x, out: o, f, k }, op, ws, exec) }
}

/// Runs an executor: the second phase of every op.
unsafe fn run(
    op: &'static str,
    workspace: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let call = format!("aclnn{op}");
    if !s.executors.remove(&(exec as usize)) {
        return s.violation(
            &call,
            format!("executor {exec:?} is not live (each executor runs once)"),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: live executors are boxes this library created; removed above, so dropped once.
    let e = unsafe { Box::from_raw(exec as *mut Executor) };
    if e.op != op {
        return s.violation(
            &call,
            format!("executor was made by aclnn{}GetWorkspaceSize", e.op),
            code::INVALID_PARAM,
        );
    }
    if size < e.workspace
        || (e.workspace > 0 && s.region(workspace as usize, e.workspace as usize).is_none())
    {
        return s.violation(
            &call,
            format!(
                "workspace {workspace:?} of {size} bytes; {} bytes of device memory were requested",
                e.workspace
            ),
            code::INVALID_PARAM,
        );
    }
    if !s.streams.contains(&(stream as usize)) {
        return s.violation(
            &call,
            format!("stream {stream:?} is not live"),
            code::INVALID_PARAM,
        );
    }
    s.dirty_streams.insert(stream as usize);
    match &e.work {
        Work::Binary { a, b, out, f } => {
            for i in 0..out.numel() {
                let v = f(
                    a.read(a.element(i, &out.dims)),
                    b.read(b.element(i, &out.dims)),
                );
                out.write(out.element(i, &out.dims), v);
            }
        }
        Work::Unary { x, out, f, k } => {
            for i in 0..out.numel() {
                out.write(
                    out.element(i, &out.dims),
                    f(x.read(x.element(i, &x.dims)), *k),
                );
            }
        }
    }
    code::SUCCESS
}

/// ACL's `aclnnAddGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnAddGetWorkspaceSize(
    a: *const c_void,
    b: *const c_void,
    alpha: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    {
        let mut guard = lock();
        let Some(s) = guard.as_mut() else {
            return code::UNINITIALIZED;
        };
        match get_scalar(s, "aclnnAddGetWorkspaceSize", alpha) {
            Ok(v) if v.value == 1.0 => {}
            Ok(v) => {
                return s.violation(
                    "aclnnAddGetWorkspaceSize",
                    format!("alpha {} (the simulator checks alpha = 1)", v.value),
                    code::INVALID_PARAM,
                )
            }
            Err(c) => return c,
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        binary(
            "aclnnAddGetWorkspaceSize",
            a,
            b,
            out,
            |x, y| x + y,
            "Add",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnAdd`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnAdd(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("Add", w, size, exec, stream) }
}

/// ACL's `aclnnMulGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnMulGetWorkspaceSize(
    a: *const c_void,
    b: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        binary(
            "aclnnMulGetWorkspaceSize",
            a,
            b,
            out,
            |x, y| x * y,
            "Mul",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnMul`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnMul(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("Mul", w, size, exec, stream) }
}

/// ACL's `aclnnMulsGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnMulsGetWorkspaceSize(
    x: *const c_void,
    scalar: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let k = {
        let mut guard = lock();
        let Some(s) = guard.as_mut() else {
            return code::UNINITIALIZED;
        };
        match get_scalar(s, "aclnnMulsGetWorkspaceSize", scalar) {
            Ok(v) => v.value,
            Err(c) => return c,
        }
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        unary(
            "aclnnMulsGetWorkspaceSize",
            x,
            out,
            |v, k| v * k,
            k,
            "Muls",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnMuls`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnMuls(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("Muls", w, size, exec, stream) }
}

/// ACL's `aclnnSiluGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnSiluGetWorkspaceSize(
    x: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        unary(
            "aclnnSiluGetWorkspaceSize",
            x,
            out,
            |v, _| v / (1.0 + (-v).exp()),
            0.0,
            "Silu",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnSilu`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnSilu(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("Silu", w, size, exec, stream) }
}

/// ACL's `aclnnCastGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnCastGetWorkspaceSize(
    x: *const c_void,
    to: i32,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    {
        let mut guard = lock();
        let Some(s) = guard.as_mut() else {
            return code::UNINITIALIZED;
        };
        let o = match get(s, "aclnnCastGetWorkspaceSize", "out", out) {
            Ok(o) => o,
            Err(c) => return c,
        };
        if dtype(to).is_none() || o.acl_dtype != to {
            return s.violation(
                "aclnnCastGetWorkspaceSize",
                format!("dtype {to} does not match out's dataType {}", o.acl_dtype),
                code::INVALID_PARAM,
            );
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        unary(
            "aclnnCastGetWorkspaceSize",
            x,
            out,
            |v, _| v,
            0.0,
            "Cast",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnCast`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnCast(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("Cast", w, size, exec, stream) }
}
