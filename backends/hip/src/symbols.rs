//! The HIP names: the HIP runtime's module API and rocBLAS as tables for
//! the shared module-launch driver, where ROCm and Hygon DTK install them,
//! and the device attributes read.

use std::path::PathBuf;

use glmhal_gpu::module_api::{
    ApiTable, Codes, ErrorString, GemmAbi, GemmTable, Select, VersionQuery,
};
use glmhal_gpu::vendor_env::rocm_roots;

/// hipErrorNoDevice.
const NO_DEVICE: i32 = 100;
/// hipErrorInvalidDevice: what ROCm 5's `hipInit` answers without a GPU.
const INVALID_DEVICE: i32 = 101;
/// hipErrorOutOfMemory.
const OUT_OF_MEMORY: i32 = 2;

/// ROCm and Hygon DTK library directories: each ROCm root's `lib`, then
/// DTK's HIP directory.
pub fn rocm_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = rocm_roots().iter().map(|r| r.join("lib")).collect();
    dirs.push(PathBuf::from("/opt/dtk/hip/lib"));
    dirs
}

/// Runtime libraries tried, in order: the ROCm and DTK directories, then
/// whatever the system loader finds by name.
pub fn runtime_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rocm_dirs()
        .iter()
        .flat_map(|d| ["libamdhip64.so", "libgalaxyhip.so.5"].map(|n| d.join(n)))
        .filter(|p| p.exists())
        .collect();
    // Bare names: the system loader's own search (LD_LIBRARY_PATH, ld.so.cache).
    files.extend(
        [
            "libamdhip64.so",
            "libamdhip64.so.6",
            "libamdhip64.so.5",
            "libgalaxyhip.so.5",
        ]
        .map(PathBuf::from),
    );
    files
}

/// The HIP runtime (`libamdhip64`, or DTK's `libgalaxyhip`).
pub static RUNTIME_API: ApiTable = ApiTable {
    backend: "hip",
    libraries: runtime_files,
    missing: "the HIP runtime (libamdhip64 or Hygon DTK's libgalaxyhip) was not found under $ROCM_PATH/lib, /opt/rocm/lib, /opt/dtk or the system paths",
    init: "hipInit",
    device_count: "hipGetDeviceCount",
    device_name: "hipDeviceGetName",
    total_memory: "hipDeviceTotalMem",
    attribute: "hipDeviceGetAttribute",
    driver_version: "hipDriverGetVersion",
    error_string: ErrorString::Returned("hipGetErrorString"),
    select: Select::Device("hipSetDevice"),
    synchronize: "hipDeviceSynchronize",
    alloc: "hipMalloc",
    free: "hipFree",
    memory_info: "hipMemGetInfo",
    copy_to_device: "hipMemcpyHtoD",
    copy_to_host: "hipMemcpyDtoH",
    module_load: "hipModuleLoadData",
    module_function: "hipModuleGetFunction",
    launch: "hipModuleLaunchKernel",
    codes: Codes {
        out_of_memory: OUT_OF_MEMORY,
        no_device: &[NO_DEVICE, INVALID_DEVICE],
        driver_too_old: &[],
    },
};

/// rocBLAS (ROCm, and Hygon DTK's build of it):
/// `rocblas_gemm_strided_batched_ex` with f32 compute, the result written in
/// place of C, on the null stream every kernel launch uses.
pub static ROCBLAS: GemmTable = GemmTable {
    name: "rocBLAS",
    explicit: |options| options.rocblas.as_deref(),
    variable: "GLMHAL_ROCBLAS",
    files: &[
        "librocblas.so",
        "librocblas.so.4",
        "librocblas.so.3",
        "librocblas.so.0",
    ],
    dirs: rocm_dirs,
    create: "rocblas_create_handle",
    destroy: "rocblas_destroy_handle",
    status_string: "rocblas_status_to_string",
    version: VersionQuery::Text("rocblas_get_version_string"),
    gemm: GemmAbi::RocblasEx("rocblas_gemm_strided_batched_ex"),
    // rocblas_operation_none, rocblas_operation_transpose.
    op: [111, 112],
    // rocblas_datatype: f32_r, f16_r, bf16_r.
    types: [151, 150, 168],
    // rocblas_datatype_f32_r as the compute type.
    compute_f32: 151,
    // rocblas_gemm_algo_standard.
    algorithm: 0,
};

/// Device attributes read (hipDeviceAttribute_t values).
pub mod attribute {
    /// Compute units.
    pub const MULTIPROCESSOR_COUNT: i32 = 63;
    /// Wavefront width.
    pub const WARP_SIZE: i32 = 87;
}
