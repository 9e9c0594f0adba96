//! The HIP [`DeviceRuntime`]: one device, its null stream, device memory,
//! hiprtc-compiled code objects for its `gcnArchName`, and launches.

use std::ffi::{c_void, CString};
use std::sync::{Arc, OnceLock};

use glmhal_gpu_kernels::blas::{opened, VendorBlas};
use glmhal_gpu_kernels::rtc::Rtc;
use glmhal_gpu_kernels::runtime::{DevicePtr, DeviceRuntime, KernelArg, ParamBlock};
use glmhal_gpu_kernels::{hiprtc, KernelFile};
use glmhal_hal::{HalError, Result};

use crate::blas::RocBlas;
use crate::loader::{attribute, Hip, DEVICE_TO_HOST, HOST_TO_DEVICE, OUT_OF_MEMORY};

/// One HIP device.
pub struct HipRuntime {
    hip: Arc<Hip>,
    index: usize,
    arch: String,
    warp: u32,
    rtc: OnceLock<std::result::Result<Rtc, String>>,
    /// rocBLAS, opened at the first product (`None` when it could not be).
    blas: OnceLock<Option<RocBlas>>,
}

// SAFETY: the HIP runtime is thread-safe; the device is selected on the
// calling thread before every call.
unsafe impl Send for HipRuntime {}
// SAFETY: as above.
unsafe impl Sync for HipRuntime {}

impl HipRuntime {
    /// Opens device `index`.
    pub fn open(hip: Arc<Hip>, index: usize) -> Result<Self> {
        let arch = hip.arch(index).ok_or_else(|| HalError::Unavailable {
            backend: format!("hip:{index}"),
            reason:
                "the device's gcnArchName could not be read, so kernels cannot be compiled for it"
                    .into(),
        })?;
        let warp = hip
            .attribute(index, attribute::WARP_SIZE)
            .unwrap_or(64)
            .max(1) as u32;
        Ok(HipRuntime {
            hip,
            index,
            arch,
            warp,
            rtc: OnceLock::new(),
            blas: OnceLock::new(),
        })
    }

    fn current(&self) -> Result<()> {
        // SAFETY: `index` is below the device count.
        self.hip.check("hipSetDevice", unsafe {
            (self.hip.exec.set_device)(self.index as i32)
        })
    }

    fn selector(&self) -> String {
        format!("hip:{}", self.index)
    }
}

impl DeviceRuntime for HipRuntime {
    fn backend(&self) -> &'static str {
        "hip"
    }

    fn warp_size(&self) -> u32 {
        self.warp
    }

    fn compile(&self, file: KernelFile) -> Result<Vec<u8>> {
        let rtc = self
            .rtc
            .get_or_init(|| hiprtc::load().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HalError::Unavailable {
                backend: self.selector(),
                reason: e.clone(),
            })?;
        let options = vec![
            format!("--gpu-architecture={}", self.arch),
            "-O3".to_string(),
            format!("-DGLMHAL_WARP={}", self.warp),
        ];
        let compiled = rtc.compile(file, &options)?;
        if !compiled.ok {
            return Err(HalError::backend(
                self.selector(),
                format!(
                    "compiling {} with {} for {}",
                    file.name,
                    rtc.describe(),
                    self.arch
                ),
                compiled.log,
            ));
        }
        Ok(compiled.code)
    }

    fn load_module(&self, image: &[u8]) -> Result<usize> {
        self.current()?;
        let mut module: *mut c_void = std::ptr::null_mut();
        // SAFETY: `image` is a code object that outlives the call.
        self.hip.check("hipModuleLoadData", unsafe {
            (self.hip.exec.module_load)(&mut module, image.as_ptr().cast())
        })?;
        Ok(module as usize)
    }

    fn function(&self, module: usize, name: &str) -> Result<usize> {
        self.current()?;
        let cname = CString::new(name)
            .map_err(|_| HalError::invalid(self.selector(), "a NUL in a kernel name"))?;
        let mut f: *mut c_void = std::ptr::null_mut();
        // SAFETY: `module` came from hipModuleLoadData; `cname` is NUL-terminated.
        self.hip
            .check(&format!("hipModuleGetFunction({name})"), unsafe {
                (self.hip.exec.get_function)(&mut f, module as *mut c_void, cname.as_ptr())
            })?;
        Ok(f as usize)
    }

    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        self.current()?;
        let mut ptr = 0u64;
        // SAFETY: `ptr` is valid for writes.
        let code = unsafe { (self.hip.exec.alloc)(&mut ptr, bytes) };
        if code == OUT_OF_MEMORY {
            let (mut free, mut total) = (0usize, 0usize);
            // SAFETY: both pointers are valid for writes.
            unsafe { (self.hip.exec.mem_info)(&mut free, &mut total) };
            return Err(HalError::OutOfMemory {
                backend: self.selector(),
                requested: bytes,
                available: Some(free),
            });
        }
        self.hip.check("hipMalloc", code)?;
        Ok(ptr)
    }

    fn free(&self, ptr: DevicePtr) {
        if self.current().is_ok() {
            // SAFETY: `ptr` came from hipMalloc and is freed once.
            unsafe { (self.hip.exec.free)(ptr) };
        }
    }

    fn upload(&self, dst: DevicePtr, offset: usize, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.current()?;
        // SAFETY: `data` is valid for its length; `dst` lies inside an allocation.
        self.hip.check("hipMemcpy (to device)", unsafe {
            (self.hip.exec.memcpy)(
                (dst + offset as u64) as *mut c_void,
                data.as_ptr().cast(),
                data.len(),
                HOST_TO_DEVICE,
            )
        })
    }

    fn download(&self, src: DevicePtr, offset: usize, out: &mut [u8]) -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.current()?;
        // SAFETY: `out` is valid for writes of its length; `src` lies inside an allocation.
        self.hip.check("hipMemcpy (to host)", unsafe {
            (self.hip.exec.memcpy)(
                out.as_mut_ptr().cast(),
                (src + offset as u64) as *const c_void,
                out.len(),
                DEVICE_TO_HOST,
            )
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
        // SAFETY: `function` came from hipModuleGetFunction; `params` point to
        // live argument bytes laid out as the kernel declares them.
        self.hip.check("hipModuleLaunchKernel", unsafe {
            (self.hip.exec.launch)(
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
            RocBlas::open(self.index, self.hip.exec.set_device, &self.selector())
        })
    }

    fn synchronize(&self) -> Result<()> {
        self.current()?;
        // SAFETY: no arguments.
        self.hip
            .check("hipDeviceSynchronize", unsafe { (self.hip.exec.sync)() })
    }
}
