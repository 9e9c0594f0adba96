//! Any byte string through the GGUF reader's checks: errors, never panics,
//! never a read outside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = glmhal_model::gguf::parse(data);
});
