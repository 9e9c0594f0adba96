//! The [`Driver`] for CUDA and HIP: one device of a [`ModuleApi`], kernels
//! compiled by the vendor's runtime compiler, launches and copies on the
//! default stream, and the vendor BLAS opened at the first product.

use std::sync::{Arc, OnceLock};

use glmhal_hal::{GpuOptions, HalError, Result};

use super::api::{ModuleApi, Selection};
use super::gemm_library::{GemmLibrary, GemmTable};
use crate::blas::{opened, VendorBlas};
use crate::driver::{Driver, KernelArg, ParamBlock};
use crate::rtc::Rtc;
use crate::{DevicePtr, KernelFile};

/// How one device's kernels are compiled.
#[derive(Clone, Debug)]
pub struct KernelCompiler {
    /// Loads the runtime compiler (NVRTC, hiprtc) as the options say.
    pub load: fn(&GpuOptions) -> Result<Rtc>,
    /// Options for this device (architecture, language level, optimization);
    /// the warp width is added by the driver.
    pub options: Vec<String>,
    /// The device architecture, for messages (`sm_90`, `gfx90a`).
    pub arch: String,
    /// Whether the loader reads the image as NUL-terminated text (PTX).
    pub nul_terminated: bool,
}

/// One CUDA or HIP device.
pub struct ModuleDriver {
    api: Arc<ModuleApi>,
    index: usize,
    selection: Selection,
    warp: u32,
    compiler: KernelCompiler,
    rtc: OnceLock<std::result::Result<Rtc, String>>,
    gemm: &'static GemmTable,
    blas: OnceLock<Option<GemmLibrary>>,
    options: GpuOptions,
}

// SAFETY: both vendor APIs are thread-safe; the device is made current on
// the calling thread before every call.
unsafe impl Send for ModuleDriver {}
// SAFETY: as above; the lazily opened parts are behind `OnceLock`s.
unsafe impl Sync for ModuleDriver {}

impl ModuleDriver {
    /// Opens device `index` of `api`, with `warp` lanes per warp (wavefront),
    /// its kernels built by `compiler` and products offered to `gemm`'s
    /// library, both found as `options` say.
    pub fn open(
        api: Arc<ModuleApi>,
        index: usize,
        warp: u32,
        compiler: KernelCompiler,
        gemm: &'static GemmTable,
        options: &GpuOptions,
    ) -> Result<Self> {
        let selection = api.select(index)?;
        Ok(ModuleDriver {
            api,
            index,
            selection,
            warp,
            compiler,
            rtc: OnceLock::new(),
            gemm,
            blas: OnceLock::new(),
            options: options.clone(),
        })
    }

    fn current(&self) -> Result<()> {
        self.api.make_current(self.selection)
    }

    fn selector(&self) -> String {
        format!("{}:{}", self.api.table.backend, self.index)
    }
}

impl Driver for ModuleDriver {
    fn backend(&self) -> &'static str {
        self.api.table.backend
    }

    fn warp_size(&self) -> u32 {
        self.warp
    }

    fn compile(&self, file: KernelFile) -> Result<Vec<u8>> {
        let rtc = self
            .rtc
            .get_or_init(|| (self.compiler.load)(&self.options).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HalError::Unavailable {
                backend: self.selector(),
                reason: e.clone(),
            })?;
        let mut options = self.compiler.options.clone();
        options.push(format!("-DGLMHAL_WARP={}", self.warp));
        let compiled = rtc.compile(file, &options)?;
        if !compiled.ok {
            return Err(HalError::backend(
                self.selector(),
                format!(
                    "compiling {} with {} for {}",
                    file.name,
                    rtc.describe(),
                    self.compiler.arch
                ),
                compiled.log,
            ));
        }
        let mut image = compiled.code;
        if self.compiler.nul_terminated && image.last() != Some(&0) {
            image.push(0);
        }
        Ok(image)
    }

    fn load_module(&self, image: &[u8]) -> Result<usize> {
        self.current()?;
        self.api.load_module(image)
    }

    fn function(&self, module: usize, name: &str) -> Result<usize> {
        self.current()?;
        self.api.function(module, name)
    }

    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        self.current()?;
        self.api.alloc(&self.selector(), bytes)
    }

    fn free(&self, ptr: DevicePtr) {
        if self.current().is_ok() {
            // SAFETY: `ptr` came from `alloc` and the backend frees it once.
            unsafe { self.api.free(ptr) };
        }
    }

    fn upload(&self, dst: DevicePtr, offset: usize, data: &[u8]) -> Result<u64> {
        self.current()?;
        // SAFETY: the backend checked the range against the allocation.
        unsafe { self.api.copy_to_device(dst + offset as u64, data) }?;
        // A copy from pageable memory returns once it has landed.
        Ok(1)
    }

    fn download(&self, src: DevicePtr, offset: usize, out: &mut [u8]) -> Result<()> {
        self.current()?;
        // SAFETY: the backend checked the range against the allocation.
        unsafe { self.api.copy_to_host(src + offset as u64, out) }
    }

    fn launch(
        &self,
        function: usize,
        grid: [u32; 3],
        block: u32,
        args: &[KernelArg<'_>],
    ) -> Result<()> {
        self.current()?;
        let mut block_of_params = ParamBlock::new(args);
        let mut params = block_of_params.pointers();
        // SAFETY: `function` came from `function`; `params` point into
        // `block_of_params`, laid out as the planner lays out the kernel's arguments.
        unsafe { self.api.launch(function, grid, block, &mut params) }
    }

    fn blas(&self) -> Option<&dyn VendorBlas> {
        opened(&self.blas, &self.selector(), || {
            GemmLibrary::open(
                self.gemm,
                &self.options,
                self.api.clone(),
                self.selection,
                &self.selector(),
            )
        })
    }

    fn synchronize(&self) -> Result<()> {
        self.current()?;
        self.api.synchronize()
    }
}
