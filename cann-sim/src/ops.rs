//! aclnn ops in the two-phase convention: `aclnnXxxGetWorkspaceSize` checks
//! the arguments and returns a workspace size and a single-use executor;
//! `aclnnXxx` checks the workspace and stream and queues the op on the
//! stream (`stream.rs`), where it later computes on the host in f64,
//! rounding once to the output dtype.

use std::ffi::c_void;

use crate::soc::{CubeInputs, Soc};
use crate::state::{code, lock, State};
use crate::stream::{overlaps, Job};
use crate::tensor::{dtype, get, get_scalar, Elem, SimTensor};

/// Defines `aclnnXxx(workspace, size, executor, stream)`, the second phase of
/// an op, which runs the executor its first phase made.
macro_rules! second_phase {
    ($name:ident, $op:literal) => {
        #[doc = concat!("ACL's `aclnn", $op, "`, with the simulator's checks.")]
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            w: *mut std::ffi::c_void,
            size: u64,
            exec: *mut std::ffi::c_void,
            stream: *mut std::ffi::c_void,
        ) -> i32 {
            // SAFETY: forwarded from the caller.
            unsafe { $crate::ops::run($op, w, size, exec, stream) }
        }
    };
}

/// A computation on host memory; an error is a violation found while running
/// (an index outside its table).
pub(crate) type Compute = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// What an executor will compute.
pub(crate) enum Work {
    /// Any computation, defined beside its entry point.
    Compute(Compute),
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
    /// out[m, n] = Σ_k a[m, k] · b[k, n], inputs as the cube unit sees them.
    Mm {
        a: SimTensor,
        b: SimTensor,
        out: SimTensor,
        cube: CubeInputs,
    },
    /// Softmax over the last dim.
    Softmax { x: SimTensor, out: SimTensor },
    /// y = x · rsqrt(mean(x²) + eps) · gamma over the last dim; rstd per row.
    RmsNorm {
        x: SimTensor,
        gamma: SimTensor,
        eps: f64,
        y: SimTensor,
        rstd: SimTensor,
    },
    /// out[i, :] = table[index[i], :].
    IndexSelect {
        table: SimTensor,
        index: SimTensor,
        out: SimTensor,
    },
    /// out[b] = a[b] · m[b], inputs as the cube unit sees them.
    BatchMatMul {
        a: SimTensor,
        b: SimTensor,
        out: SimTensor,
        cube: CubeInputs,
    },
    /// out = silu(first half) · second half, along the last dim.
    SwiGlu { x: SimTensor, out: SimTensor },
    /// target[index[i]] = source[i] along dim 0.
    IndexCopy {
        target: SimTensor,
        index: SimTensor,
        source: SimTensor,
    },
}

struct Executor {
    op: &'static str,
    workspace: u64,
    work: Work,
    /// Storage of every tensor the op was given.
    regions: Vec<(usize, usize)>,
}

impl Work {
    /// Computes the work on host memory; an error is a violation found
    /// while running (an index outside its table).
    pub(crate) fn execute(self) -> Result<(), String> {
        match self {
            Work::Compute(f) => f()?,
            Work::Binary { a, b, out, f } => compute_binary(&a, &b, &out, f),
            Work::Unary { x, out, f, k } => compute_unary(&x, &out, f, k),
            Work::Mm { a, b, out, cube } => compute_mm(&a, &b, &out, cube),
            Work::Softmax { x, out } => compute_softmax(&x, &out),
            Work::RmsNorm {
                x,
                gamma,
                eps,
                y,
                rstd,
            } => compute_rms_norm(&x, &gamma, eps, &y, &rstd),
            Work::BatchMatMul { a, b, out, cube } => compute_batch_mat_mul(&a, &b, &out, cube),
            Work::SwiGlu { x, out } => compute_swiglu(&x, &out),
            Work::IndexCopy {
                target,
                index,
                source,
            } => compute_index_copy(&target, &index, &source)?,
            Work::IndexSelect { table, index, out } => compute_index_select(&table, &index, &out)?,
        }
        Ok(())
    }
}

/// The workspace an op asks for: shape dependent, as aclnn's are (a tiling
/// buffer plus room for partial results of the largest view).
fn workspace_for(largest_view: usize) -> u64 {
    (16 * 1024 + 4 * largest_view as u64).div_ceil(512) * 512
}

pub(crate) fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
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
pub(crate) unsafe fn hand_out(
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
    let workspace = workspace_for(s.fetched_elems);
    s.fetched_elems = 0;
    s.fetch_call.clear();
    let p = Box::into_raw(Box::new(Executor {
        op,
        workspace,
        work,
        regions: std::mem::take(&mut s.fetched),
    })) as usize;
    s.executors.insert(p);
    // SAFETY: both checked non-null.
    unsafe {
        *ws = workspace;
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
pub(crate) unsafe fn unary(
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

/// `out = f(a, b)` elementwise, `a` and `b` broadcast to `out`'s shape.
fn compute_binary(a: &SimTensor, b: &SimTensor, out: &SimTensor, f: fn(f64, f64) -> f64) {
    for i in 0..out.numel() {
        let v = f(
            a.read(a.element(i, &out.dims)),
            b.read(b.element(i, &out.dims)),
        );
        out.write(out.element(i, &out.dims), v);
    }
}

/// `out = f(x, k)` elementwise.
fn compute_unary(x: &SimTensor, out: &SimTensor, f: fn(f64, f64) -> f64, k: f64) {
    for i in 0..out.numel() {
        out.write(
            out.element(i, &out.dims),
            f(x.read(x.element(i, &x.dims)), k),
        );
    }
}

/// Runs an executor: the second phase of every op.
pub(crate) unsafe fn run(
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
    let ws_len = e.workspace as usize;
    if let Some(at) = e
        .regions
        .iter()
        .find(|r| overlaps(**r, (workspace as usize, ws_len)))
    {
        return s.violation(
            &call,
            format!(
                "workspace {workspace:?}+{ws_len} overlaps a tensor of the op (storage at {:#x})",
                at.0
            ),
            code::INVALID_PARAM,
        );
    }
    if let Err(c) = s.ready(&call) {
        return c;
    }
    let context = crate::state::thread_context();
    let Some(queue) = s.streams.get_mut(&(stream as usize)) else {
        return s.violation(
            &call,
            format!("stream {stream:?} is not live"),
            code::INVALID_PARAM,
        );
    };
    if context != Some(queue.device) {
        let device = queue.device;
        return s.violation(
            &call,
            format!("stream {stream:?} belongs to device {device}, not to the calling thread's device {context:?}"),
            code::INVALID_PARAM,
        );
    }
    queue.queued.push(Job {
        call,
        work: e.work,
        regions: e.regions,
        workspace: (workspace as usize, ws_len),
    });
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

/// Takes live tensors by name for a first phase, or the violation's code.
pub(crate) fn tensors<const N: usize>(
    s: &mut State,
    call: &str,
    named: [(&str, *const c_void); N],
) -> Result<[SimTensor; N], i32> {
    let mut out = Vec::with_capacity(N);
    for (name, t) in named {
        out.push(get(s, call, name, t)?);
    }
    out.try_into().map_err(|_| code::INVALID_PARAM)
}

/// What the cube unit makes of `a`'s dtype under `cube_math_type` on this
/// SoC, or the violation the call is refused with.
pub(crate) fn cube_inputs(
    s: &mut State,
    call: &str,
    a: &SimTensor,
    cube_math_type: i8,
) -> Result<CubeInputs, i32> {
    Soc::current()
        .cube_inputs(a.dtype, cube_math_type)
        .map_err(|what| s.violation(call, what, code::INVALID_PARAM))
}

/// `out[m, n] = Σ_k a[m, k] · b[k, n]`.
fn compute_mm(a: &SimTensor, b: &SimTensor, out: &SimTensor, cube: CubeInputs) {
    let (m, k, n) = (a.dims[0], a.dims[1], b.dims[1]);
    let product = products(
        &a.values(&a.dims, |v| cube.apply(v)),
        &b.values(&b.dims, |v| cube.apply(v)),
        [m, k, n],
    );
    for (i, v) in product.iter().enumerate() {
        out.write(out.element(i, &out.dims), *v);
    }
}

/// `[m, k] · [k, n]` of row-major values, summed in f64.
pub(crate) fn products(a: &[f64], b: &[f64], [m, k, n]: [usize; 3]) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for (row, acc) in out.chunks_exact_mut(n.max(1)).enumerate().take(m) {
        for q in 0..k {
            let x = a[row * k + q];
            for (o, w) in acc.iter_mut().zip(&b[q * n..(q + 1) * n]) {
                *o += x * w;
            }
        }
    }
    out
}

/// ACL's `aclnnMmGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnMmGetWorkspaceSize(
    a: *const c_void,
    b: *const c_void,
    out: *const c_void,
    cube_math: i8,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnMmGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [a, b, o] = match tensors(s, call, [("self", a), ("mat2", b), ("out", out)]) {
        Ok(t) => t,
        Err(c) => return c,
    };
    if a.dims.len() != 2
        || b.dims.len() != 2
        || a.dims[1] != b.dims[0]
        || o.dims != [a.dims[0], b.dims[1]]
    {
        return s.violation(
            call,
            format!(
                "self {:?} · mat2 {:?} does not give out {:?}",
                a.dims, b.dims, o.dims
            ),
            code::INVALID_PARAM,
        );
    }
    let cube = match cube_inputs(s, call, &a, cube_math) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let work = Work::Mm { a, b, out: o, cube };
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, work, "Mm", ws, exec) }
}

/// ACL's `aclnnMm`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnMm(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("Mm", w, size, exec, stream) }
}

/// Softmax of `x` over the last dim into `out`.
fn compute_softmax(x: &SimTensor, out: &SimTensor) {
    let cols = x.dims.last().copied().unwrap_or(1).max(1);
    for row in 0..x.numel() / cols {
        let v: Vec<f64> = (0..cols)
            .map(|c| x.read(x.element(row * cols + c, &x.dims)))
            .collect();
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = v.iter().map(|e| (e - m).exp()).sum();
        for (c, e) in v.iter().enumerate() {
            out.write(out.element(row * cols + c, &out.dims), (e - m).exp() / sum);
        }
    }
}

/// ACL's `aclnnSoftmaxGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnSoftmaxGetWorkspaceSize(
    x: *const c_void,
    dim: i64,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnSoftmaxGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [x, o] = match tensors(s, call, [("self", x), ("out", out)]) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let rank = x.dims.len() as i64;
    if x.dims != o.dims || !(dim == -1 || dim == rank - 1) {
        return s.violation(
            call,
            format!(
                "self {:?}, out {:?}, dim {dim} (the simulator computes the last dim)",
                x.dims, o.dims
            ),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, Work::Softmax { x, out: o }, "Softmax", ws, exec) }
}

/// ACL's `aclnnSoftmax`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnSoftmax(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("Softmax", w, size, exec, stream) }
}

/// `y = x · rsqrt(mean(x²) + eps) · gamma` over the last dim, and each
/// row's `rstd`.
fn compute_rms_norm(x: &SimTensor, gamma: &SimTensor, eps: f64, y: &SimTensor, rstd: &SimTensor) {
    let cols = x.dims.last().copied().unwrap_or(1).max(1);
    for row in 0..x.numel() / cols {
        let v: Vec<f64> = (0..cols)
            .map(|c| x.read(x.element(row * cols + c, &x.dims)))
            .collect();
        let r = 1.0 / (v.iter().map(|e| e * e).sum::<f64>() / cols as f64 + eps).sqrt();
        for (c, e) in v.iter().enumerate() {
            let g = gamma.read(gamma.element(c, &gamma.dims));
            y.write(y.element(row * cols + c, &y.dims), e * r * g);
        }
        rstd.write(rstd.element(row, &rstd.dims), r);
    }
}

/// ACL's `aclnnRmsNormGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnRmsNormGetWorkspaceSize(
    x: *const c_void,
    gamma: *const c_void,
    eps: f64,
    y: *const c_void,
    rstd: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnRmsNormGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    if let Err(e) = crate::soc::require(s, call, "RmsNorm", crate::soc::Soc::has_rms_norm) {
        return e;
    }
    let [x, g, yo, r] = match tensors(
        s,
        call,
        [("x", x), ("gamma", gamma), ("yOut", y), ("rstdOut", rstd)],
    ) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let cols = x.dims.last().copied().unwrap_or(0);
    let mut rstd_dims = x.dims.clone();
    if let Some(l) = rstd_dims.last_mut() {
        *l = 1;
    }
    if yo.dims != x.dims
        || g.dims != [cols]
        || r.dims != rstd_dims
        || r.dtype != Elem::F32
        || eps.is_nan()
        || eps <= 0.0
    {
        return s.violation(
            call,
            format!(
                "x {:?}, gamma {:?}, yOut {:?}, rstdOut {:?} {}, eps {eps}",
                x.dims, g.dims, yo.dims, r.dims, r.dtype
            ),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        hand_out(
            s,
            call,
            Work::RmsNorm {
                x,
                gamma: g,
                eps,
                y: yo,
                rstd: r,
            },
            "RmsNorm",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnRmsNorm`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnRmsNorm(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("RmsNorm", w, size, exec, stream) }
}

/// `out[i, :] = table[index[i], :]`, or the violation of an index outside
/// the table.
fn compute_index_select(
    table: &SimTensor,
    index: &SimTensor,
    out: &SimTensor,
) -> Result<(), String> {
    let (rows, h) = (table.dims[0], table.dims[1]);
    for i in 0..index.numel() {
        let id = index.read(index.element(i, &index.dims)) as i64;
        if id < 0 || id as usize >= rows {
            return Err(format!(
                "index {id} at {i} is outside the {rows} rows of self"
            ));
        }
        for c in 0..h {
            let v = table.read(table.element(id as usize * h + c, &table.dims));
            out.write(out.element(i * h + c, &out.dims), v);
        }
    }
    Ok(())
}

/// ACL's `aclnnIndexSelectGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnIndexSelectGetWorkspaceSize(
    x: *const c_void,
    dim: i64,
    index: *const c_void,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnIndexSelectGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [t, i, o] = match tensors(s, call, [("self", x), ("index", index), ("out", out)]) {
        Ok(t) => t,
        Err(c) => return c,
    };
    if dim != 0
        || t.dims.len() != 2
        || i.dims.len() != 1
        || i.dtype != Elem::I32
        || o.dims != [i.dims[0], t.dims[1]]
    {
        return s.violation(
            call,
            format!(
                "self {:?}, dim {dim}, index {:?} {}, out {:?}",
                t.dims, i.dims, i.dtype, o.dims
            ),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        hand_out(
            s,
            call,
            Work::IndexSelect {
                table: t,
                index: i,
                out: o,
            },
            "IndexSelect",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnIndexSelect`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnIndexSelect(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("IndexSelect", w, size, exec, stream) }
}

/// `out[b] = a[b] · m[b]` for every batch `b`.
fn compute_batch_mat_mul(a: &SimTensor, b: &SimTensor, out: &SimTensor, cube: CubeInputs) {
    let (batch, m, k, n) = (a.dims[0], a.dims[1], a.dims[2], b.dims[2]);
    let (av, bv) = (
        a.values(&a.dims, |v| cube.apply(v)),
        b.values(&b.dims, |v| cube.apply(v)),
    );
    for bi in 0..batch {
        let product = products(
            &av[bi * m * k..(bi + 1) * m * k],
            &bv[bi * k * n..(bi + 1) * k * n],
            [m, k, n],
        );
        for (i, v) in product.iter().enumerate() {
            out.write(out.element(bi * m * n + i, &out.dims), *v);
        }
    }
}

/// ACL's `aclnnBatchMatMulGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnBatchMatMulGetWorkspaceSize(
    a: *const c_void,
    b: *const c_void,
    out: *const c_void,
    cube_math: i8,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnBatchMatMulGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [a, b, o] = match tensors(s, call, [("self", a), ("mat2", b), ("out", out)]) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let ok = a.dims.len() == 3
        && b.dims.len() == 3
        && a.dims[0] == b.dims[0]
        && a.dims[2] == b.dims[1]
        && o.dims == [a.dims[0], a.dims[1], b.dims[2]];
    if !ok {
        return s.violation(
            call,
            format!("self {:?} · mat2 {:?} -> out {:?}", a.dims, b.dims, o.dims),
            code::INVALID_PARAM,
        );
    }
    let cube = match cube_inputs(s, call, &a, cube_math) {
        Ok(c) => c,
        Err(e) => return e,
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        hand_out(
            s,
            call,
            Work::BatchMatMul { a, b, out: o, cube },
            "BatchMatMul",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnBatchMatMul`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnBatchMatMul(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("BatchMatMul", w, size, exec, stream) }
}

/// `out = silu(first half) · second half` of `x` along the last dim.
fn compute_swiglu(x: &SimTensor, out: &SimTensor) {
    let half = out.dims.last().copied().unwrap_or(1).max(1);
    for i in 0..out.numel() {
        let (row, c) = (i / half, i % half);
        let gate = x.read(x.element(row * 2 * half + c, &x.dims));
        let up = x.read(x.element(row * 2 * half + c + half, &x.dims));
        out.write(out.element(i, &out.dims), gate / (1.0 + (-gate).exp()) * up);
    }
}

/// ACL's `aclnnSwiGluGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnSwiGluGetWorkspaceSize(
    x: *const c_void,
    dim: i64,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnSwiGluGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [x, o] = match tensors(s, call, [("x", x), ("out", out)]) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let mut half = x.dims.clone();
    if let Some(l) = half.last_mut() {
        *l /= 2;
    }
    let rank = x.dims.len() as i64;
    if !(dim == -1 || dim == rank - 1) || x.dims.last().is_none_or(|l| l % 2 != 0) || o.dims != half
    {
        return s.violation(
            call,
            format!(
                "x {:?}, dim {dim}, out {:?} (out must be x with the last dim halved)",
                x.dims, o.dims
            ),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: forwarded from the caller.
    unsafe { hand_out(s, call, Work::SwiGlu { x, out: o }, "SwiGlu", ws, exec) }
}

/// ACL's `aclnnSwiGlu`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnSwiGlu(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("SwiGlu", w, size, exec, stream) }
}

/// ACL's `aclnnGeluV2GetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnGeluV2GetWorkspaceSize(
    x: *const c_void,
    approximate: i64,
    out: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    if approximate != 1 {
        let mut guard = lock();
        let Some(s) = guard.as_mut() else {
            return code::UNINITIALIZED;
        };
        return s.violation(
            "aclnnGeluV2GetWorkspaceSize",
            format!("approximate {approximate}: the simulator has the tanh form (1) only"),
            code::INVALID_PARAM,
        );
    }
    let gelu = |v: f64, _| {
        0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        unary(
            "aclnnGeluV2GetWorkspaceSize",
            x,
            out,
            gelu,
            0.0,
            "GeluV2",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnGeluV2`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnGeluV2(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("GeluV2", w, size, exec, stream) }
}

/// `target[index[i]] = source[i]` along dim 0, or the violation of an
/// index outside the target.
fn compute_index_copy(
    target: &SimTensor,
    index: &SimTensor,
    source: &SimTensor,
) -> Result<(), String> {
    let rows = target.dims[0];
    let row: usize = target.dims[1..].iter().product();
    for i in 0..index.numel() {
        let id = index.read(index.element(i, &index.dims)) as i64;
        if id < 0 || id as usize >= rows {
            return Err(format!(
                "index {id} at {i} is outside the {rows} rows of selfRef"
            ));
        }
        for c in 0..row {
            let v = source.read(source.element(i * row + c, &source.dims));
            target.write(target.element(id as usize * row + c, &target.dims), v);
        }
    }
    Ok(())
}

/// ACL's `aclnnInplaceIndexCopyGetWorkspaceSize`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnInplaceIndexCopyGetWorkspaceSize(
    target: *const c_void,
    dim: i64,
    index: *const c_void,
    source: *const c_void,
    ws: *mut u64,
    exec: *mut *mut c_void,
) -> i32 {
    let call = "aclnnInplaceIndexCopyGetWorkspaceSize";
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    let [t, i, src] = match tensors(
        s,
        call,
        [("selfRef", target), ("index", index), ("source", source)],
    ) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let ok = dim == 0
        && i.dims.len() == 1
        && i.dtype == Elem::I32
        && src.dims.len() == t.dims.len()
        && src.dims[0] == i.dims[0]
        && src.dims[1..] == t.dims[1..]
        && src.dtype == t.dtype;
    if !ok {
        return s.violation(
            call,
            format!(
                "selfRef {:?} {}, dim {dim}, index {:?} {}, source {:?} {}",
                t.dims, t.dtype, i.dims, i.dtype, src.dims, src.dtype
            ),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        hand_out(
            s,
            call,
            Work::IndexCopy {
                target: t,
                index: i,
                source: src,
            },
            "InplaceIndexCopy",
            ws,
            exec,
        )
    }
}

/// ACL's `aclnnInplaceIndexCopy`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclnnInplaceIndexCopy(
    w: *mut c_void,
    size: u64,
    exec: *mut c_void,
    stream: *mut c_void,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { run("InplaceIndexCopy", w, size, exec, stream) }
}
