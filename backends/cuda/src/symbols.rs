//! The NVIDIA names: the driver API (`libcuda`) and cuBLAS as tables for the
//! shared module-launch driver, and the device attributes read.

use std::path::PathBuf;

use glmhal_gpu::module_api::{
    ApiTable, Codes, ErrorString, GemmAbi, GemmTable, Select, VersionQuery,
};
use glmhal_gpu::vendor_env::cuda_roots;

/// CUDA_ERROR_NO_DEVICE.
const NO_DEVICE: i32 = 100;
/// CUDA_ERROR_OUT_OF_MEMORY.
const OUT_OF_MEMORY: i32 = 2;
/// CUDA_ERROR_INSUFFICIENT_DRIVER.
const DRIVER_TOO_OLD: i32 = 35;

/// The driver API, loaded as `libcuda.so.1` (the driver's name on Linux),
/// then `libcuda.so`.
pub static DRIVER_API: ApiTable = ApiTable {
    backend: "cuda",
    libraries: || ["libcuda.so.1", "libcuda.so"].map(PathBuf::from).to_vec(),
    missing:
        "the NVIDIA driver library (libcuda.so.1) was not found: no NVIDIA driver is installed",
    init: "cuInit",
    device_count: "cuDeviceGetCount",
    device_name: "cuDeviceGetName",
    total_memory: "cuDeviceTotalMem_v2",
    attribute: "cuDeviceGetAttribute",
    driver_version: "cuDriverGetVersion",
    error_string: ErrorString::OutParameter("cuGetErrorString"),
    select: Select::PrimaryContext {
        retain: "cuDevicePrimaryCtxRetain",
        set_current: "cuCtxSetCurrent",
    },
    synchronize: "cuCtxSynchronize",
    alloc: "cuMemAlloc_v2",
    free: "cuMemFree_v2",
    memory_info: "cuMemGetInfo_v2",
    copy_to_device: "cuMemcpyHtoD_v2",
    copy_to_host: "cuMemcpyDtoH_v2",
    module_load: "cuModuleLoadData",
    module_function: "cuModuleGetFunction",
    launch: "cuLaunchKernel",
    codes: Codes {
        out_of_memory: OUT_OF_MEMORY,
        no_device: &[NO_DEVICE],
        driver_too_old: &[DRIVER_TOO_OLD],
    },
};

/// Where cuBLAS is looked for besides the options' file and `LD_LIBRARY_PATH`:
/// the CUDA toolkit roots, then the system's library directory.
fn cublas_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = cuda_roots().iter().map(|r| r.join("lib64")).collect();
    dirs.push(PathBuf::from("/usr/lib/x86_64-linux-gnu"));
    dirs
}

/// cuBLAS: `cublasGemmStridedBatchedEx` with `CUBLAS_COMPUTE_32F` (f32
/// accumulation, no TF32 or f16 shortcuts) on the context's default stream,
/// the one every kernel launch uses.
pub static CUBLAS: GemmTable = GemmTable {
    name: "cuBLAS",
    explicit: |options| options.cublas.as_deref(),
    variable: "GLMHAL_CUBLAS",
    files: &["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
    dirs: cublas_dirs,
    create: "cublasCreate_v2",
    destroy: "cublasDestroy_v2",
    status_string: "cublasGetStatusString",
    version: VersionQuery::HandleInteger("cublasGetVersion_v2"),
    gemm: GemmAbi::CublasEx("cublasGemmStridedBatchedEx"),
    // CUBLAS_OP_N, CUBLAS_OP_T.
    op: [0, 1],
    // cudaDataType: CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF.
    types: [0, 2, 14],
    // CUBLAS_COMPUTE_32F.
    compute_f32: 68,
    // CUBLAS_GEMM_DEFAULT.
    algorithm: -1,
};

/// Device attributes read (CUdevice_attribute values).
pub mod attribute {
    /// Streaming multiprocessors.
    pub const MULTIPROCESSOR_COUNT: i32 = 16;
    /// Compute capability, major.
    pub const CC_MAJOR: i32 = 75;
    /// Compute capability, minor.
    pub const CC_MINOR: i32 = 76;
    /// Core clock, kHz.
    pub const CLOCK_KHZ: i32 = 13;
    /// Memory clock, kHz.
    pub const MEMORY_CLOCK_KHZ: i32 = 36;
    /// Memory bus width, bits.
    pub const MEMORY_BUS_BITS: i32 = 37;
}
