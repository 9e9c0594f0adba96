//! The module-launch API that NVIDIA's driver API (`libcuda`) and HIP share
//! call for call: the same C signatures under other names (`cuMemAlloc_v2`
//! and `hipMalloc`, `cuLaunchKernel` and `hipModuleLaunchKernel`, ...).
//! Everything is written once here; a vendor crate supplies only tables:
//! an [`ApiTable`] of symbol names and codes, a [`GemmTable`] for its BLAS,
//! and how to describe a device. [`ModuleApi`] binds the table,
//! [`ModuleDriver`] is the [`crate::driver::Driver`] over it,
//! [`GemmLibrary`] binds cuBLAS or rocBLAS, and [`provider`] probes and
//! opens devices for the vendor's `BackendProvider`.

mod api;
mod gemm_library;
mod module_driver;
pub mod provider;
mod table;

pub use api::{Init, ModuleApi, Selection};
pub use gemm_library::{GemmAbi, GemmLibrary, GemmTable, VersionQuery};
pub use module_driver::{KernelCompiler, ModuleDriver};
pub use provider::{ModuleProvider, Vendor};
pub use table::{ApiTable, Codes, ErrorString, Select};
