//! The simulator's global state and how violations are reported.

use std::collections::{HashMap, HashSet};

use crate::stream::Stream;
use std::ffi::CString;
use std::sync::{Mutex, MutexGuard};

/// aclError codes the simulator returns.
pub mod code {
    /// ACL_SUCCESS.
    pub const SUCCESS: i32 = 0;
    /// ACL_ERROR_INVALID_PARAM.
    pub const INVALID_PARAM: i32 = 100000;
    /// ACL_ERROR_UNINITIALIZE.
    pub const UNINITIALIZED: i32 = 100001;
    /// ACL_ERROR_REPEAT_INITIALIZE.
    pub const REPEAT_INITIALIZE: i32 = 100002;
    /// ACL_ERROR_BAD_ALLOC.
    pub const BAD_ALLOC: i32 = 200000;
    /// ACL_ERROR_INVALID_DEVICE.
    pub const INVALID_DEVICE: i32 = 107001;
    /// ACL_ERROR_RT_CONTEXT_NULL: the calling thread has no context.
    pub const CONTEXT_NULL: i32 = 107002;
}

thread_local! {
    /// The device whose default context `aclrtSetDevice` bound to this
    /// thread (ACL contexts are per thread).
    static CONTEXT: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

/// Binds device `d`'s context to the calling thread (or unbinds it).
pub fn set_thread_context(d: Option<i32>) {
    CONTEXT.with(|c| c.set(d));
}

/// The device whose context the calling thread holds.
pub fn thread_context() -> Option<i32> {
    CONTEXT.with(|c| c.get())
}

/// One allocation of simulated device memory.
pub struct Allocation {
    pub data: Box<[u8]>,
}

/// Everything the simulator tracks.
#[derive(Default)]
pub struct State {
    pub initialized: bool,
    pub finalized: bool,
    /// Threads that hold a context (set a device) and have not reset it.
    pub contexts: usize,
    /// Allocations by start address.
    pub allocations: HashMap<usize, Allocation>,
    /// Live streams by handle, each with its queue.
    pub streams: HashMap<usize, Stream>,
    pub next_stream: usize,
    /// Storage `(start, bytes)` of the tensors an op's first phase has
    /// fetched so far, and the most elements one of them views: taken by
    /// the executor it makes.
    pub fetched: Vec<(usize, usize)>,
    pub fetched_elems: usize,
    /// The first phase those were fetched by.
    pub fetch_call: String,
    /// Live tensors, scalars, int arrays and executors (by address).
    pub tensors: HashSet<usize>,
    pub scalars: HashSet<usize>,
    pub int_arrays: HashSet<usize>,
    pub executors: HashSet<usize>,
    /// The last error message, as `aclGetRecentErrMsg` returns it.
    pub message: CString,
    /// Every violation so far.
    pub violations: Vec<String>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// The state, created on first use.
pub fn lock() -> MutexGuard<'static, Option<State>> {
    let mut g = STATE.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        *g = Some(State::default());
    }
    g
}

impl State {
    /// Records a violation by `call` and returns `code`.
    pub fn violation(&mut self, call: &str, what: String, code: i32) -> i32 {
        let text = format!("{call}: {what}");
        eprintln!("cann-sim violation: {text}");
        // Environment: as for GLMHAL_CANN_SIM_SOC, a loaded C library's test setting.
        if std::env::var("GLMHAL_CANN_SIM_ABORT").is_ok_and(|v| v == "1") {
            std::process::abort();
        }
        self.message = CString::new(text.replace('\0', " ")).unwrap_or_default();
        // A refused first phase makes no executor: what it fetched is moot.
        self.fetched.clear();
        self.fetched_elems = 0;
        self.violations.push(format!("{call}: {what}"));
        code
    }

    /// Checks that `aclInit` ran (and `aclFinalize` did not) and a device is set.
    pub fn ready(&mut self, call: &str) -> Result<(), i32> {
        if !self.initialized || self.finalized {
            return Err(self.violation(
                call,
                "called before aclInit or after aclFinalize".into(),
                code::UNINITIALIZED,
            ));
        }
        if thread_context().is_none() {
            return Err(self.violation(
                call,
                "the calling thread has no context (call aclrtSetDevice or aclrtSetCurrentContext on this thread first)".into(),
                code::CONTEXT_NULL,
            ));
        }
        Ok(())
    }

    /// The stream queue that touches `[start, start + len)`, if one does.
    pub fn busy_with(&self, start: usize, len: usize) -> Option<usize> {
        self.streams
            .iter()
            .find(|(_, q)| q.touches(start, len))
            .map(|(h, _)| *h)
    }

    /// The allocation holding `[ptr, ptr + len)`, if any.
    pub fn region(&mut self, ptr: usize, len: usize) -> Option<(usize, usize)> {
        self.allocations.iter().find_map(|(start, a)| {
            let end = start + a.data.len();
            (ptr >= *start && ptr + len <= end).then_some((*start, a.data.len()))
        })
    }
}

/// Violations recorded so far in this process (for tests).
pub fn violations() -> Vec<String> {
    lock()
        .as_ref()
        .map(|s| s.violations.clone())
        .unwrap_or_default()
}
