//! Any byte string through the safetensors header checks: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = glmhal_model::safetensors::check_bytes(data);
});
