//! The simulator's global state and how violations are reported.

use std::collections::{HashMap, HashSet};
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
    pub device: Option<i32>,
    /// Allocations by start address.
    pub allocations: HashMap<usize, Allocation>,
    /// Live streams, and those with work not yet synchronized.
    pub streams: HashSet<usize>,
    pub dirty_streams: HashSet<usize>,
    pub next_stream: usize,
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
        if self.device.is_none() {
            return Err(self.violation(
                call,
                "called before aclrtSetDevice".into(),
                code::INVALID_DEVICE,
            ));
        }
        Ok(())
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
