//! What a GPU vendor runtime must provide (memory, modules, launches, one
//! stream) and the backend built on it, shared by CUDA, HIP and OpenCL: buffers,
//! compiling each kernel file once for the device at first use, planning an
//! op onto the tree's entry points ([`crate::plan`]) and reading the status
//! words kernels report bad ids into.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use glmhal_hal::pool::SizePool;
use glmhal_hal::{
    check_views, Backend, Buffer, DeviceId, DeviceInfo, HalError, Op, Precision, Result, Support,
    TensorDesc, TensorRef,
};

use crate::blas::{enabled_by_env, plan_gemm, Gemm, VendorBlas};
use crate::plan::{plan, supports, Arg};
use crate::{KernelFile, FILES};

pub use crate::DevicePtr;

/// One kernel argument as the runtime receives it.
#[derive(Clone, Copy, Debug)]
pub enum KernelArg<'a> {
    /// A whole allocation from [`DeviceRuntime::alloc`] (views carry offsets).
    Buffer(DevicePtr),
    /// A value passed by copy, laid out as the kernel declares it.
    Value(&'a [u8]),
}

/// Argument bytes for launch APIs that take an array of pointers to each
/// argument (`cuLaunchKernel`, `hipModuleLaunchKernel`): a buffer is its
/// device address.
pub struct ParamBlock {
    storage: Vec<Vec<u8>>,
}

impl ParamBlock {
    /// Copies `args` into owned storage.
    pub fn new(args: &[KernelArg<'_>]) -> Self {
        let storage = args
            .iter()
            .map(|a| match a {
                KernelArg::Buffer(ptr) => ptr.to_le_bytes().to_vec(),
                KernelArg::Value(bytes) => bytes.to_vec(),
            })
            .collect();
        ParamBlock { storage }
    }

    /// One pointer per argument, valid while `self` lives and is not moved.
    pub fn pointers(&mut self) -> Vec<*mut c_void> {
        self.storage
            .iter_mut()
            .map(|b| b.as_mut_ptr().cast())
            .collect()
    }
}

/// One vendor runtime on one device. Every call runs on the device's one
/// stream, in order.
pub trait DeviceRuntime: Send + Sync + 'static {
    /// `cuda`, `hip` or `opencl`.
    fn backend(&self) -> &'static str;
    /// Warp (wavefront) width of the device, as `GLMHAL_WARP`: the lanes
    /// that cooperate on one output of the quantized matvec.
    fn warp_size(&self) -> u32;
    /// Compiles `file` for this device (PTX, a code object, or the
    /// [`crate::flatten`]ed source where the driver builds it at load).
    fn compile(&self, file: KernelFile) -> Result<Vec<u8>>;
    /// Loads a compiled image; returns a module handle.
    fn load_module(&self, image: &[u8]) -> Result<usize>;
    /// Finds an entry point in a loaded module.
    fn function(&self, module: usize, name: &str) -> Result<usize>;
    /// Allocates device memory (out of memory is `HalError::OutOfMemory`).
    fn alloc(&self, bytes: usize) -> Result<DevicePtr>;
    /// Frees memory from `alloc`.
    fn free(&self, ptr: DevicePtr);
    /// Copies host bytes to the device, `offset` bytes into `dst`.
    fn upload(&self, dst: DevicePtr, offset: usize, data: &[u8]) -> Result<()>;
    /// Copies device bytes from `offset` bytes into `src` to the host,
    /// waiting for earlier work.
    fn download(&self, src: DevicePtr, offset: usize, out: &mut [u8]) -> Result<()>;
    /// Launches `function` on `grid` blocks of `block` threads.
    fn launch(
        &self,
        function: usize,
        grid: [u32; 3],
        block: u32,
        args: &[KernelArg<'_>],
    ) -> Result<()>;
    /// Waits for everything enqueued.
    fn synchronize(&self) -> Result<()>;
    /// The vendor BLAS on this device's stream, when its library loaded
    /// (float products go there; see [`crate::blas`]).
    fn blas(&self) -> Option<&dyn VendorBlas> {
        None
    }
}

/// Idle bytes the pool keeps at most; beyond it freed memory goes back to the driver.
const POOL_MAX_IDLE: usize = 1 << 30;

/// Freed device allocations by size, handed out again by `alloc` of the same
/// size (activations, temporaries), so steady-state steps do not call the
/// driver's allocator.
struct Pool {
    runtime: Arc<dyn DeviceRuntime>,
    sizes: SizePool<DevicePtr>,
}

impl Pool {
    fn take(&self, size: usize) -> Option<DevicePtr> {
        self.sizes.take(size)
    }

    fn give(&self, ptr: DevicePtr, size: usize) {
        if let Some(ptr) = self.sizes.give(ptr, size) {
            self.runtime.free(ptr);
        }
    }

    /// Returns every idle allocation to the driver.
    fn release(&self) {
        for ptr in self.sizes.drain() {
            self.runtime.free(ptr);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.release();
    }
}

/// Opens device `index` (default 0) of a vendor whose probe found `probe`:
/// the device's info from the probe, the runtime from `open_runtime`, and the
/// shared [`GpuBackend`] over it. Unavailable probes and missing indices are
/// `HalError::Unavailable` naming `backend:index`.
pub fn open_device(
    backend: &str,
    index: Option<usize>,
    probe: glmhal_hal::Availability,
    open_runtime: impl FnOnce(usize) -> Result<Arc<dyn DeviceRuntime>>,
) -> Result<Box<dyn Backend>> {
    let i = index.unwrap_or(0);
    let unavailable = |reason: String| HalError::Unavailable {
        backend: format!("{backend}:{i}"),
        reason,
    };
    let devices = match probe {
        glmhal_hal::Availability::Available { devices } => devices,
        glmhal_hal::Availability::Unavailable { detail, .. } => return Err(unavailable(detail)),
    };
    let info = devices
        .get(i)
        .cloned()
        .ok_or_else(|| unavailable(format!("{} device(s) found", devices.len())))?;
    Ok(Box::new(GpuBackend::new(open_runtime(i)?, info)?))
}

/// A buffer in device memory.
pub struct GpuBuffer {
    /// Device address.
    pub ptr: DevicePtr,
    /// Bytes asked for.
    pub len: usize,
    /// Owning device.
    pub device: DeviceId,
    size: usize,
    pool: Arc<Pool>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.pool.give(self.ptr, self.size);
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} bytes at {:#x})", self.len, self.ptr)
    }
}

glmhal_hal::device_buffer!(GpuBuffer);

/// Modules by file and functions by entry name, loaded on this device.
#[derive(Default)]
struct Loaded {
    modules: HashMap<&'static str, usize>,
    functions: HashMap<String, usize>,
}

/// The [`Backend`] over a [`DeviceRuntime`].
pub struct GpuBackend {
    runtime: Arc<dyn DeviceRuntime>,
    info: DeviceInfo,
    id: DeviceId,
    /// Loaded modules and functions.
    loaded: Mutex<Loaded>,
    /// Four words kernels report bad data into (see `compat.h`).
    status: DevicePtr,
    pool: Arc<Pool>,
    /// Float products go to the vendor BLAS when it loaded (unless
    /// `GLMHAL_GPU_GEMM=kernels`).
    use_blas: bool,
}

impl GpuBackend {
    /// A backend over `runtime` for the device `info` describes.
    pub fn new(runtime: Arc<dyn DeviceRuntime>, info: DeviceInfo) -> Result<Self> {
        let status = runtime.alloc(16)?;
        runtime.upload(status, 0, &[0u8; 16])?;
        Ok(GpuBackend {
            info,
            id: DeviceId::fresh(),
            loaded: Mutex::new(Loaded::default()),
            status,
            pool: Arc::new(Pool {
                runtime: runtime.clone(),
                sizes: SizePool::new(POOL_MAX_IDLE, usize::MAX),
            }),
            use_blas: enabled_by_env(),
            runtime,
        })
    }

    fn selector(&self) -> String {
        format!("{}:{}", self.runtime.backend(), self.info.index)
    }

    fn buffer<'a>(&self, b: &'a Buffer) -> Result<&'a GpuBuffer> {
        b.downcast::<GpuBuffer>()
            .filter(|g| g.device == self.id)
            .ok_or_else(|| {
                HalError::invalid(
                    self.selector(),
                    "the buffer belongs to another device or backend",
                )
            })
    }

    /// The entry point `name` of `file`, compiling and loading the file at first use.
    fn function(&self, file: &'static str, name: &str) -> Result<usize> {
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| HalError::backend(self.selector(), "kernels", "module cache poisoned"))?;
        if let Some(f) = guard.functions.get(name) {
            return Ok(*f);
        }
        let module = match guard.modules.get(file) {
            Some(m) => *m,
            None => {
                let source = FILES
                    .iter()
                    .find(|f| f.name == file)
                    .copied()
                    .ok_or_else(|| {
                        HalError::invalid(self.selector(), format!("no kernel file {file}"))
                    })?;
                let image = self.runtime.compile(source)?;
                let m = self.runtime.load_module(&image)?;
                guard.modules.insert(file, m);
                m
            }
        };
        let f = self.runtime.function(module, name)?;
        guard.functions.insert(name.to_string(), f);
        Ok(f)
    }

    /// Launches the tree's kernels for `op`; `ptrs` are the tensors' buffer
    /// addresses, inputs then output.
    fn launch_planned(
        &self,
        op: &Op,
        ins: &[TensorDesc],
        out: &TensorDesc,
        ptrs: &[DevicePtr],
    ) -> Result<()> {
        for launch in plan(op, ins, out, self.runtime.warp_size())? {
            let f = self.function(launch.file, &launch.entry)?;
            let values: Vec<Vec<u8>> = launch
                .args
                .iter()
                .map(|a| match a {
                    Arg::Tensor(_) | Arg::Status => Vec::new(),
                    Arg::View(v) => v.bytes(),
                    Arg::U32(x) => x.to_le_bytes().to_vec(),
                    Arg::U64(x) => x.to_le_bytes().to_vec(),
                    Arg::I32(x) => x.to_le_bytes().to_vec(),
                    Arg::F32(x) => x.to_le_bytes().to_vec(),
                    Arg::Strides(s) => s.iter().flat_map(|x| x.to_le_bytes()).collect(),
                })
                .collect();
            let args: Vec<KernelArg<'_>> = launch
                .args
                .iter()
                .zip(&values)
                .map(|(a, bytes)| match a {
                    Arg::Tensor(i) => KernelArg::Buffer(ptrs[*i]),
                    Arg::Status => KernelArg::Buffer(self.status),
                    _ => KernelArg::Value(bytes),
                })
                .collect();
            self.runtime.launch(f, launch.grid, launch.block, &args)?;
        }
        Ok(())
    }

    /// A product on the vendor BLAS: the bias (if any) is first cast into
    /// the output by the tree's kernel, then the GEMM accumulates onto it.
    fn run_gemm(&self, blas: &dyn VendorBlas, gemm: &Gemm, ptrs: &[DevicePtr]) -> Result<()> {
        if let Some(fill) = &gemm.bias_fill {
            let out = ptrs.len() - 1;
            let out_desc = TensorDesc::strided(
                gemm.dtype,
                &fill.shape,
                &[gemm.c.ld as usize, 1],
                gemm.c.offset as usize,
            );
            self.launch_planned(
                &Op::Cast,
                std::slice::from_ref(fill),
                &out_desc,
                &[ptrs[2], ptrs[out]],
            )?;
        }
        let address = |o| {
            Gemm::address(o, ptrs)
                .ok_or_else(|| HalError::invalid(self.selector(), "a GEMM operand is missing"))
        };
        blas.gemm(
            gemm,
            address(&gemm.a)?,
            address(&gemm.b)?,
            address(&gemm.c)?,
        )
    }

    fn check_status(&self) -> Result<()> {
        let mut words = [0u8; 16];
        self.runtime.download(self.status, 0, &mut words)?;
        let word = |i: usize| {
            u32::from_le_bytes([
                words[4 * i],
                words[4 * i + 1],
                words[4 * i + 2],
                words[4 * i + 3],
            ])
        };
        let (code, value) = (word(0), word(1));
        if code == 0 {
            return Ok(());
        }
        self.runtime.upload(self.status, 0, &[0u8; 16])?;
        glmhal_hal::kernel_status::check(&self.selector(), code, value)
    }
}

impl Drop for GpuBackend {
    fn drop(&mut self) {
        self.runtime.free(self.status);
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> &'static str {
        self.runtime.backend()
    }

    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn device_id(&self) -> DeviceId {
        self.id
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        // The error names what the caller asked for, not the rounded size.
        let out_of_memory = |e: HalError| match e {
            HalError::OutOfMemory {
                backend, available, ..
            } => HalError::OutOfMemory {
                backend,
                requested: bytes,
                available,
            },
            other => other,
        };
        // Sizes round up to 256 bytes so freed buffers fit more requests.
        let size =
            bytes
                .max(1)
                .div_ceil(256)
                .checked_mul(256)
                .ok_or_else(|| HalError::OutOfMemory {
                    backend: self.selector(),
                    requested: bytes,
                    available: None,
                })?;
        let ptr = match self.pool.take(size) {
            Some(p) => p,
            None => match self.runtime.alloc(size) {
                Ok(p) => p,
                Err(HalError::OutOfMemory { .. }) => {
                    // Idle pooled memory may be what is missing.
                    self.pool.release();
                    self.runtime.alloc(size).map_err(out_of_memory)?
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Buffer::new(GpuBuffer {
            ptr,
            len: bytes,
            device: self.id,
            size,
            pool: self.pool.clone(),
        }))
    }

    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        let b = self.buffer(dst)?;
        let range =
            dst.checked_range(&format!("{} upload", self.selector()), offset, data.len())?;
        self.runtime.upload(b.ptr, range.start, data)
    }

    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let b = self.buffer(src)?;
        let range =
            src.checked_range(&format!("{} download", self.selector()), offset, out.len())?;
        self.runtime.download(b.ptr, range.start, out)?;
        self.check_status()
    }

    fn supports(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        supports(op, inputs, outputs)
    }

    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision {
        crate::plan::precision(op, inputs, outputs)
    }

    fn execute(&self, op: &Op, inputs: &[TensorRef<'_>], outputs: &[TensorRef<'_>]) -> Result<()> {
        let ins: Vec<TensorDesc> = inputs.iter().map(|t| t.desc.clone()).collect();
        let outs: Vec<TensorDesc> = outputs.iter().map(|t| t.desc.clone()).collect();
        glmhal_ops::validate(op, &ins, &outs)?;
        check_views(self.runtime.backend(), self.id, inputs, outputs)?;
        if let Support::Unsupported(reason) = self.supports(op, &ins, &outs) {
            return Err(HalError::Unsupported {
                backend: self.selector(),
                op: op.name().into(),
                reason,
            });
        }
        let ptrs = inputs
            .iter()
            .chain(outputs)
            .map(|t| self.buffer(t.buffer).map(|b| b.ptr))
            .collect::<Result<Vec<_>>>()?;
        if let Some(blas) = self.runtime.blas().filter(|_| self.use_blas) {
            if let Some(gemm) = plan_gemm(op, &ins, &outs[0]) {
                return self.run_gemm(blas, &gemm, &ptrs);
            }
        }
        self.launch_planned(op, &ins, &outs[0], &ptrs)
    }

    fn synchronize(&self) -> Result<()> {
        self.runtime.synchronize()?;
        self.check_status()
    }
}
