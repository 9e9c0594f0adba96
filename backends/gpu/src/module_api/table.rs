//! What a vendor crate writes to describe its module-launch API: symbol
//! names and the codes its entry points return. Nothing here runs.

use std::ffi::c_int;
use std::path::PathBuf;

/// One vendor's names for the shared module-launch API.
#[derive(Debug)]
pub struct ApiTable {
    /// The backend name (`cuda`, `hip`), used in errors.
    pub backend: &'static str,
    /// Library files to try, in order.
    pub libraries: fn() -> Vec<PathBuf>,
    /// Why nothing loaded, said before the loader's own words.
    pub missing: &'static str,
    /// `cuInit` / `hipInit`.
    pub init: &'static str,
    /// `cuDeviceGetCount` / `hipGetDeviceCount`.
    pub device_count: &'static str,
    /// `cuDeviceGetName` / `hipDeviceGetName`.
    pub device_name: &'static str,
    /// `cuDeviceTotalMem_v2` / `hipDeviceTotalMem`.
    pub total_memory: &'static str,
    /// `cuDeviceGetAttribute` / `hipDeviceGetAttribute`.
    pub attribute: &'static str,
    /// `cuDriverGetVersion` / `hipDriverGetVersion`.
    pub driver_version: &'static str,
    /// How the error text of a code is read.
    pub error_string: ErrorString,
    /// How a device is made current on the calling thread.
    pub select: Select,
    /// `cuCtxSynchronize` / `hipDeviceSynchronize`.
    pub synchronize: &'static str,
    /// `cuMemAlloc_v2` / `hipMalloc`.
    pub alloc: &'static str,
    /// `cuMemFree_v2` / `hipFree`.
    pub free: &'static str,
    /// `cuMemGetInfo_v2` / `hipMemGetInfo`.
    pub memory_info: &'static str,
    /// `cuMemcpyHtoD_v2` / `hipMemcpyHtoD`.
    pub copy_to_device: &'static str,
    /// `cuMemcpyDtoH_v2` / `hipMemcpyDtoH`.
    pub copy_to_host: &'static str,
    /// `cuModuleLoadData` / `hipModuleLoadData`.
    pub module_load: &'static str,
    /// `cuModuleGetFunction` / `hipModuleGetFunction`.
    pub module_function: &'static str,
    /// `cuLaunchKernel` / `hipModuleLaunchKernel`.
    pub launch: &'static str,
    /// The return codes glmhal tells apart.
    pub codes: Codes,
}

/// How a vendor turns an error code into words.
#[derive(Clone, Copy, Debug)]
pub enum ErrorString {
    /// `CUresult cuGetErrorString(CUresult, const char **)`.
    OutParameter(&'static str),
    /// `const char *hipGetErrorString(hipError_t)`.
    Returned(&'static str),
}

/// How a vendor makes a device current for the calling thread.
#[derive(Clone, Copy, Debug)]
pub enum Select {
    /// CUDA: retain the device's primary context once, then set it current
    /// before every call.
    PrimaryContext {
        /// `cuDevicePrimaryCtxRetain`.
        retain: &'static str,
        /// `cuCtxSetCurrent`.
        set_current: &'static str,
    },
    /// HIP: set the device by index before every call (`hipSetDevice`).
    Device(&'static str),
}

/// Return codes with a meaning of their own.
#[derive(Clone, Copy, Debug)]
pub struct Codes {
    /// Allocation failed for lack of memory.
    pub out_of_memory: c_int,
    /// Initialization or counting found no device.
    pub no_device: &'static [c_int],
    /// The driver is older than the library that called it.
    pub driver_too_old: &'static [c_int],
}
