//! The vendors' own environment variables, read as their toolkits' tools
//! read them: where a toolkit is installed (`CUDA_PATH`, `CUDA_HOME`,
//! `ROCM_PATH`) and the system's search paths (`PATH`, `LD_LIBRARY_PATH`).
//! This is the documented exception to "nothing below the CLI reads the
//! environment": these variables describe a user's installation before
//! glmhal runs, for every program alike. glmhal's own settings arrive as
//! `BackendOptions`.

use std::path::PathBuf;

// Environment: every read in this file is a vendor's or the system's own
// variable, as the module documentation says.

/// CUDA toolkit roots: `CUDA_PATH`, `CUDA_HOME`, then `/usr/local/cuda`.
pub fn cuda_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["CUDA_PATH", "CUDA_HOME"]
        .into_iter()
        .filter_map(|var| std::env::var_os(var).map(PathBuf::from))
        .collect();
    roots.push(PathBuf::from("/usr/local/cuda"));
    roots
}

/// ROCm roots: `ROCM_PATH`, then `/opt/rocm` and Hygon DTK's `/opt/dtk`.
pub fn rocm_roots() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::var_os("ROCM_PATH")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    roots.extend(["/opt/rocm", "/opt/dtk"].map(PathBuf::from));
    roots
}

/// The directories of `PATH`.
pub fn path_dirs() -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}

/// The directories of `LD_LIBRARY_PATH`.
pub fn ld_library_path() -> Vec<PathBuf> {
    std::env::var_os("LD_LIBRARY_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default()
}
