//! The one place where the environment becomes settings: the `GLMHAL_*`
//! variables mapped onto [`BackendOptions`] (which flags may then override),
//! and the planted slowdown `GLMHAL_INJECT_DELAY` asks for. Nothing below
//! the CLI reads these variables.

use glmhal_hal::{BackendOptions, Result};
use glmhal_testkit::delay::{Delay, DELAY_VARIABLE};

/// The backend options the `GLMHAL_*` variables ask for; a value that does
/// not parse is an error naming the variable.
pub fn from_environment() -> Result<BackendOptions> {
    BackendOptions::from_variables(|var| std::env::var(var).ok())
}

/// The slowdown `GLMHAL_INJECT_DELAY=OP:MILLISECONDS` plants, with the
/// variable's text for the warning; `None` when it is unset or empty.
pub fn planted_delay() -> Result<Option<(Delay, String)>> {
    match std::env::var(DELAY_VARIABLE) {
        Ok(text) if !text.trim().is_empty() => Ok(Some((text.parse()?, text))),
        _ => Ok(None),
    }
}
