//! The CUDA [`DeviceRuntime`]: the primary context of one device, its
//! default stream, device memory, NVRTC-compiled modules and launches.

use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, OnceLock};

use glmhal_gpu_kernels::blas::{opened, VendorBlas};
use glmhal_gpu_kernels::rtc::Rtc;
use glmhal_gpu_kernels::runtime::{DevicePtr, DeviceRuntime, KernelArg, ParamBlock};
use glmhal_gpu_kernels::{nvrtc, KernelFile, Target};
use glmhal_hal::{HalError, Result};

use crate::blas::CuBlas;
use crate::loader::{attribute, Cuda, OUT_OF_MEMORY};

/// One device: the driver, its primary context and loaded modules.
pub struct CudaRuntime {
    cuda: Arc<Cuda>,
    index: usize,
    sm: u32,
    context: usize,
    nvrtc: OnceLock<std::result::Result<Rtc, String>>,
    /// Module and function handles by index (the driver's pointers).
    handles: Mutex<Vec<usize>>,
    /// cuBLAS, opened at the first product (`None` when it could not be).
    blas: OnceLock<Option<CuBlas>>,
}

// SAFETY: the driver API is thread-safe; the context handle is made current
// on the calling thread before every call.
unsafe impl Send for CudaRuntime {}
// SAFETY: as above; interior state is behind a mutex.
unsafe impl Sync for CudaRuntime {}

impl CudaRuntime {
    /// Opens device `index` through its primary context.
    pub fn open(cuda: Arc<Cuda>, index: usize) -> Result<Self> {
        let major = cuda.attribute(index, attribute::CC_MAJOR)?;
        let minor = cuda.attribute(index, attribute::CC_MINOR)?;
        let mut ctx: *mut c_void = std::ptr::null_mut();
        // SAFETY: `ctx` is valid for writes; `index` is below the device count.
        cuda.check("cuDevicePrimaryCtxRetain", unsafe {
            (cuda.exec.ctx_retain)(&mut ctx, index as i32)
        })?;
        Ok(CudaRuntime {
            cuda,
            index,
            sm: (major * 10 + minor) as u32,
            context: ctx as usize,
            nvrtc: OnceLock::new(),
            handles: Mutex::new(Vec::new()),
            blas: OnceLock::new(),
        })
    }

    fn current(&self) -> Result<()> {
        // SAFETY: the context was retained in `open` and lives as long as the driver.
        self.cuda.check("cuCtxSetCurrent", unsafe {
            (self.cuda.exec.ctx_set)(self.context as *mut c_void)
        })
    }

    fn selector(&self) -> String {
        format!("cuda:{}", self.index)
    }
}

impl DeviceRuntime for CudaRuntime {
    fn backend(&self) -> &'static str {
        "cuda"
    }

    fn warp_size(&self) -> u32 {
        32
    }

    fn compile(&self, file: KernelFile) -> Result<Vec<u8>> {
        let rtc = self
            .nvrtc
            .get_or_init(|| nvrtc::load().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HalError::Unavailable {
                backend: self.selector(),
                reason: e.clone(),
            })?;
        let target = Target::Cuda { sm: self.sm };
        let mut options = vec![
            format!("--gpu-architecture=compute_{}", self.sm),
            "--std=c++17".to_string(),
        ];
        options.push(format!("-DGLMHAL_WARP={}", target.warp_size()));
        let compiled = rtc.compile(file, &options)?;
        if !compiled.ok {
            return Err(HalError::backend(
                self.selector(),
                format!(
                    "compiling {} with {} for sm_{}",
                    file.name,
                    rtc.describe(),
                    self.sm
                ),
                compiled.log,
            ));
        }
        let mut ptx = compiled.code;
        if ptx.last() != Some(&0) {
            ptx.push(0);
        }
        Ok(ptx)
    }

    fn load_module(&self, image: &[u8]) -> Result<usize> {
        self.current()?;
        let mut module: *mut c_void = std::ptr::null_mut();
        // SAFETY: `image` is NUL-terminated PTX that outlives the call.
        self.cuda
            .check("cuModuleLoadData (JIT of the PTX)", unsafe {
                (self.cuda.exec.module_load)(&mut module, image.as_ptr().cast())
            })?;
        let mut h = self
            .handles
            .lock()
            .map_err(|_| HalError::backend(self.selector(), "modules", "poisoned"))?;
        h.push(module as usize);
        Ok(module as usize)
    }

    fn function(&self, module: usize, name: &str) -> Result<usize> {
        self.current()?;
        let cname = CString::new(name)
            .map_err(|_| HalError::invalid(self.selector(), "a NUL in a kernel name"))?;
        let mut f: *mut c_void = std::ptr::null_mut();
        // SAFETY: `module` came from cuModuleLoadData; `cname` is NUL-terminated.
        self.cuda
            .check(&format!("cuModuleGetFunction({name})"), unsafe {
                (self.cuda.exec.get_function)(&mut f, module as *mut c_void, cname.as_ptr())
            })?;
        Ok(f as usize)
    }

    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        self.current()?;
        let mut ptr = 0u64;
        // SAFETY: `ptr` is valid for writes.
        let code = unsafe { (self.cuda.exec.alloc)(&mut ptr, bytes) };
        if code == OUT_OF_MEMORY {
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: both pointers are valid for writes.
            unsafe { (self.cuda.exec.mem_info)(&mut free, &mut total) };
            return Err(HalError::OutOfMemory {
                backend: self.selector(),
                requested: bytes,
                available: Some(free),
            });
        }
        self.cuda.check("cuMemAlloc", code)?;
        Ok(ptr)
    }

    fn free(&self, ptr: DevicePtr) {
        if self.current().is_ok() {
            // SAFETY: `ptr` came from cuMemAlloc and is freed once.
            unsafe { (self.cuda.exec.free)(ptr) };
        }
    }

    fn upload(&self, dst: DevicePtr, offset: usize, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.current()?;
        // SAFETY: `data` is valid for its length; `dst` lies inside an allocation (checked by the caller).
        self.cuda.check("cuMemcpyHtoD", unsafe {
            (self.cuda.exec.htod)(dst + offset as u64, data.as_ptr().cast(), data.len())
        })
    }

    fn download(&self, src: DevicePtr, offset: usize, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.current()?;
        // SAFETY: `out` is valid for writes of its length; `src` lies inside an allocation.
        self.cuda.check("cuMemcpyDtoH", unsafe {
            (self.cuda.exec.dtoh)(out.as_mut_ptr().cast(), src + offset as u64, out.len())
        })
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
        // SAFETY: `function` came from cuModuleGetFunction; `params` point to
        // live argument bytes laid out as the kernel declares them.
        self.cuda.check("cuLaunchKernel", unsafe {
            (self.cuda.exec.launch)(
                function as *mut c_void,
                grid[0],
                grid[1],
                grid[2],
                block,
                1,
                1,
                0,
                std::ptr::null_mut(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        })
    }

    fn blas(&self) -> Option<&dyn VendorBlas> {
        opened(&self.blas, &self.selector(), || {
            CuBlas::open(self.context, self.cuda.exec.ctx_set, &self.selector())
        })
    }

    fn synchronize(&self) -> Result<()> {
        self.current()?;
        // SAFETY: no arguments.
        self.cuda
            .check("cuCtxSynchronize", unsafe { (self.cuda.exec.ctx_sync)() })
    }
}
