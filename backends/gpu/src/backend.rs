//! The [`Backend`] every GPU vendor shares, over a [`Driver`]: buffers from a
//! size pool, compiling each kernel file once for the device at first use,
//! planning an op onto the tree's entry points ([`crate::plan`]) or the
//! vendor BLAS ([`crate::blas`]), and reading the status words kernels
//! report bad data into.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use glmhal_hal::pool::SizePool;
use glmhal_hal::{
    Backend, Buffer, Counters, DeviceId, DeviceInfo, HalError, Op, OpCall, OpContract, Precision,
    Result, Support, TensorDesc, TensorRef, WorkCounters,
};

use crate::blas::{plan_gemm, Gemm, VendorBlas};
use crate::driver::{Driver, HostRead, KernelArg};
use crate::fusion::fuse;
use crate::plan::{once, plan, supports, Arg, Context, Launch};
use crate::plan_cache::{PlanCache, Resolved};
use crate::staged_gemm::{gemm_reads, plan_staged, staged_precision, StagedGemm, Step};
use crate::{DevicePtr, FILES};
use smallvec::SmallVec;

/// Idle bytes the pool keeps at most; beyond it freed memory goes back to the driver.
const POOL_MAX_IDLE: usize = 1 << 30;

/// Freed device allocations by size, handed out again by `alloc` of the same
/// size (activations, temporaries), so steady-state steps do not call the
/// driver's allocator.
struct Pool {
    driver: Arc<dyn Driver>,
    sizes: SizePool<DevicePtr>,
}

impl Pool {
    fn take(&self, size: usize) -> Option<DevicePtr> {
        self.sizes.take(size)
    }

    fn give(&self, ptr: DevicePtr, size: usize) {
        if let Some(ptr) = self.sizes.give(ptr, size) {
            self.driver.free(ptr);
        }
    }

    /// Returns every idle allocation to the driver.
    fn release(&self) {
        for ptr in self.sizes.drain() {
            self.driver.free(ptr);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.release();
    }
}

/// Opens device `index` (default 0) of a vendor whose probe found `probe`:
/// the device's info from the probe, the driver from `open_driver`, and the
/// shared [`GpuBackend`] over it (the vendor BLAS used when `use_blas`). Unavailable probes and missing indices are
/// `HalError::Unavailable` naming `backend:index`.
pub fn open_device(
    backend: &str,
    index: Option<usize>,
    probe: glmhal_hal::Availability,
    use_blas: bool,
    open_driver: impl FnOnce(usize) -> Result<Arc<dyn Driver>>,
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
    Ok(Box::new(GpuBackend::new(open_driver(i)?, info, use_blas)?))
}

/// A buffer in device memory.
pub struct GpuBuffer {
    /// Device address.
    pub ptr: DevicePtr,
    /// Bytes asked for.
    pub len: usize,
    /// Owning device.
    pub device: DeviceId,
    /// A Q8_0/Q4_0 weight in the packed layout ([`crate::packed`]).
    pub packed: bool,
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

/// The [`Backend`] over a [`Driver`].
pub struct GpuBackend {
    driver: Arc<dyn Driver>,
    info: DeviceInfo,
    id: DeviceId,
    /// Loaded modules and functions.
    loaded: Mutex<Loaded>,
    /// Four words kernels report bad data into (see `compat.h`).
    status: DevicePtr,
    pool: Arc<Pool>,
    /// Float products go to the vendor BLAS when it loaded, unless the
    /// options turned it off.
    use_blas: bool,
    /// What was launched, copied and waited for.
    counters: Counters,
    /// Plans by op and descriptors.
    plans: PlanCache,
}

impl GpuBackend {
    /// A backend over `driver` for the device `info` describes; float
    /// products go to the driver's vendor BLAS when `use_blas`.
    pub fn new(driver: Arc<dyn Driver>, info: DeviceInfo, use_blas: bool) -> Result<Self> {
        let status = driver.alloc(16)?;
        driver.upload(status, 0, &[0u8; 16])?;
        driver.synchronize()?;
        Ok(GpuBackend {
            info,
            id: DeviceId::fresh(),
            loaded: Mutex::new(Loaded::default()),
            status,
            pool: Arc::new(Pool {
                driver: driver.clone(),
                sizes: SizePool::new(POOL_MAX_IDLE, usize::MAX),
            }),
            use_blas,
            counters: Counters::default(),
            plans: PlanCache::default(),
            driver,
        })
    }

    fn selector(&self) -> String {
        format!("{}:{}", self.driver.backend(), self.info.index)
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
                let image = self.driver.compile(source)?;
                let m = self.driver.load_module(&image)?;
                guard.modules.insert(file, m);
                m
            }
        };
        let f = self.driver.function(module, name)?;
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
        self.launch_in(op, ins, out, ptrs, Context::warp(self.driver.warp_size()))
    }

    /// [`GpuBackend::launch_planned`] with the inputs' layouts in `context`,
    /// the plan kept for the next call with the same descriptors.
    fn launch_in(
        &self,
        op: &Op,
        ins: &[TensorDesc],
        out: &TensorDesc,
        ptrs: &[DevicePtr],
        context: Context,
    ) -> Result<()> {
        let descs: SmallVec<[&TensorDesc; 8]> = ins.iter().chain([out]).collect();
        let plan = self.plans.get_or_plan(
            &[op],
            &descs,
            &[u64::from(context.warp), u64::from(context.packed)],
            || self.resolve(plan(op, ins, out, context)?),
        )?;
        self.run_resolved(&plan, ptrs)
    }

    /// Each launch with its function, compiling files at first use.
    fn resolve(&self, launches: Vec<Launch>) -> Result<Vec<Resolved>> {
        launches
            .into_iter()
            .map(|launch| {
                Ok(Resolved {
                    function: self.function(launch.file, &launch.entry)?,
                    launch,
                })
            })
            .collect()
    }

    /// Enqueues a resolved plan: one scratch allocation for the op, back to
    /// the pool once its launches are enqueued (later work on the in-order
    /// stream may reuse it).
    fn run_resolved(&self, plan: &[Resolved], ptrs: &[DevicePtr]) -> Result<()> {
        let scratch = plan
            .iter()
            .flat_map(|r| &r.launch.args)
            .filter_map(|a| match a {
                Arg::Workspace(bytes) => Some(*bytes as usize),
                _ => None,
            })
            .max()
            .map(|bytes| self.alloc_gpu(bytes))
            .transpose()?;
        let scratch = scratch.as_ref().map_or(0, |s| s.ptr);
        for r in plan {
            self.launch_with(r.function, &r.launch, ptrs, scratch)?;
        }
        Ok(())
    }

    /// Enqueues one planned launch, looking its function up.
    fn launch_one(&self, launch: &Launch, ptrs: &[DevicePtr], scratch: DevicePtr) -> Result<()> {
        let f = self.function(launch.file, &launch.entry)?;
        self.launch_with(f, launch, ptrs, scratch)
    }

    /// Enqueues `launch` of function `f`; `ptrs` are its tensors' addresses
    /// and `scratch` the op's workspace. The argument bytes are packed on
    /// the stack.
    fn launch_with(
        &self,
        f: usize,
        launch: &Launch,
        ptrs: &[DevicePtr],
        scratch: DevicePtr,
    ) -> Result<()> {
        let mut bytes: SmallVec<[u8; 1024]> = SmallVec::new();
        let mut ends: SmallVec<[usize; 32]> = SmallVec::new();
        for a in &launch.args {
            match a {
                Arg::Tensor(_) | Arg::Status | Arg::Workspace(_) => {}
                Arg::View(v) => v.write(&mut bytes),
                Arg::U32(x) => bytes.extend_from_slice(&x.to_le_bytes()),
                Arg::U64(x) => bytes.extend_from_slice(&x.to_le_bytes()),
                Arg::I32(x) => bytes.extend_from_slice(&x.to_le_bytes()),
                Arg::F32(x) => bytes.extend_from_slice(&x.to_le_bytes()),
                Arg::Strides(s) => s
                    .iter()
                    .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
            }
            ends.push(bytes.len());
        }
        let mut start = 0;
        let args: SmallVec<[KernelArg<'_>; 32]> = launch
            .args
            .iter()
            .zip(&ends)
            .map(|(a, &end)| {
                let value = &bytes[start..end];
                start = end;
                match a {
                    Arg::Tensor(i) => KernelArg::Buffer(ptrs[*i]),
                    Arg::Status => KernelArg::Buffer(self.status),
                    Arg::Workspace(_) => KernelArg::Buffer(scratch),
                    _ => KernelArg::Value(value),
                }
            })
            .collect();
        self.driver.launch(f, launch.grid, launch.block, &args)?;
        self.counters.launch(launch.reads);
        Ok(())
    }

    /// A staged product: casts and dequantizations into a workspace, then
    /// the vendor GEMMs ([`crate::staged_gemm`]).
    fn run_staged(
        &self,
        blas: &dyn VendorBlas,
        staged: &StagedGemm,
        ptrs: &[DevicePtr],
    ) -> Result<()> {
        let workspace = self.alloc_gpu(staged.workspace)?;
        let mut all = ptrs.to_vec();
        all.extend([workspace.ptr, workspace.ptr + staged.panel_offset as u64]);
        for step in &staged.steps {
            match step {
                Step::Launch(l) => self.launch_one(l, &all, workspace.ptr)?,
                Step::Gemm(g) => self.run_gemm(blas, g, &all, gemm_reads(g))?,
            }
        }
        Ok(())
    }

    /// A product on the vendor BLAS: the bias (if any) is first cast into
    /// the output by the tree's kernel, then the GEMM accumulates onto it.
    fn run_gemm(
        &self,
        blas: &dyn VendorBlas,
        gemm: &Gemm,
        ptrs: &[DevicePtr],
        reads: u64,
    ) -> Result<()> {
        if let Some(fill) = &gemm.bias_fill {
            // The GEMM's own output (a staged product's tensors go on past it).
            let out = gemm.c.tensor;
            if out >= ptrs.len() {
                return Err(HalError::invalid(
                    self.selector(),
                    "a GEMM operand is missing",
                ));
            }
            let out_desc = TensorDesc::strided(
                gemm.output,
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
        )?;
        self.counters.library_call(reads);
        Ok(())
    }

    /// A device allocation of at least `bytes` (out of memory names `bytes`).
    fn alloc_gpu(&self, bytes: usize) -> Result<GpuBuffer> {
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
            None => match self.driver.alloc(size) {
                Ok(p) => p,
                Err(HalError::OutOfMemory { .. }) => {
                    // Idle pooled memory may be what is missing.
                    self.pool.release();
                    self.driver.alloc(size).map_err(out_of_memory)?
                }
                Err(e) => return Err(e),
            },
        };
        Ok(GpuBuffer {
            ptr,
            len: bytes,
            device: self.id,
            packed: false,
            size,
            pool: self.pool.clone(),
        })
    }

    /// Copies `data` to `offset` bytes into `b` (the range already checked).
    fn copy_in(&self, b: &GpuBuffer, offset: usize, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let waits = self.driver.upload(b.ptr, offset, data)?;
        self.counters.upload(data.len());
        (0..waits).for_each(|_| self.counters.host_wait());
        Ok(())
    }

    /// Reads `result` (when given) and the status words back after
    /// everything enqueued, in one host wait where the driver can, and
    /// reports bad data a kernel met.
    fn read_back(&self, result: Option<HostRead<'_>>) -> Result<()> {
        let mut words = [0u8; 16];
        let status = HostRead {
            src: self.status,
            offset: 0,
            out: &mut words,
        };
        let waits = match result {
            Some(r) => {
                let bytes = r.out.len();
                let waits = self.driver.download_many(&mut [r, status])?;
                self.counters.download(bytes);
                waits
            }
            None => self.driver.download_many(&mut [status])?,
        };
        self.counters.download(16);
        (0..waits).for_each(|_| self.counters.host_wait());
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
        self.driver.upload(self.status, 0, &[0u8; 16])?;
        self.driver.synchronize()?;
        glmhal_hal::kernel_status::check(&self.selector(), code, value)
    }
}

impl Drop for GpuBackend {
    fn drop(&mut self) {
        self.driver.free(self.status);
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> &'static str {
        self.driver.backend()
    }

    fn info(&self) -> &DeviceInfo {
        &self.info
    }

    fn device_id(&self) -> DeviceId {
        self.id
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        self.alloc_gpu(bytes).map(Buffer::new)
    }

    fn prepare_weight(&self, desc: &TensorDesc, bytes: &[u8]) -> Result<Buffer> {
        if !crate::packed::packs(desc) {
            return self.upload_new(bytes);
        }
        let packed = crate::packed::pack(desc, bytes)?;
        let mut gpu = self.alloc_gpu(packed.len())?;
        gpu.packed = true;
        self.copy_in(&gpu, 0, &packed)?;
        Ok(Buffer::new(gpu))
    }

    fn upload(&self, dst: &Buffer, offset: usize, data: &[u8]) -> Result<()> {
        let b = self.buffer(dst)?;
        let range =
            dst.checked_range(&format!("{} upload", self.selector()), offset, data.len())?;
        self.copy_in(b, range.start, data)
    }

    fn download(&self, src: &Buffer, offset: usize, out: &mut [u8]) -> Result<()> {
        let b = self.buffer(src)?;
        let range =
            src.checked_range(&format!("{} download", self.selector()), offset, out.len())?;
        if out.is_empty() {
            return self.read_back(None);
        }
        self.read_back(Some(HostRead {
            src: b.ptr,
            offset: range.start,
            out,
        }))
    }

    fn contract(&self) -> &'static dyn OpContract {
        &glmhal_ops::CONTRACT
    }

    fn supports_valid(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Support {
        supports(op, inputs, outputs)
    }

    fn precision(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Precision {
        let staged = self
            .driver
            .blas()
            .filter(|_| self.use_blas)
            .and_then(|_| staged_precision(op, inputs, outputs.first()?));
        staged.unwrap_or_else(|| crate::plan::precision(op, inputs, outputs))
    }

    unsafe fn execute_valid(
        &self,
        op: &Op,
        inputs: &[TensorRef<'_>],
        outputs: &[TensorRef<'_>],
    ) -> Result<()> {
        let mut context = Context::warp(self.driver.warp_size());
        let mut ptrs: SmallVec<[DevicePtr; 8]> = SmallVec::new();
        for (i, t) in inputs.iter().chain(outputs).enumerate() {
            let b = self.buffer(t.buffer)?;
            ptrs.push(b.ptr);
            if b.packed && i < inputs.len().min(8) {
                context.packed |= 1 << i;
            }
        }
        let ins: SmallVec<[TensorDesc; 4]> = inputs.iter().map(|t| t.desc.clone()).collect();
        let out = &outputs[0].desc;
        if let Some(blas) = self.driver.blas().filter(|_| self.use_blas) {
            if let Some(staged) = plan_staged(op, &ins, out, context)? {
                return self.run_staged(blas, &staged, &ptrs);
            }
            if let Some(gemm) = plan_gemm(op, &ins, out).filter(|_| context.packed == 0) {
                return self.run_gemm(blas, &gemm, &ptrs, once(&ins));
            }
        }
        self.launch_in(op, &ins, out, &ptrs, context)
    }

    unsafe fn execute_valid_step(&self, calls: &[OpCall<'_>]) -> Result<()> {
        let packed = |t: &TensorRef<'_>| self.buffer(t.buffer).is_ok_and(|b| b.packed);
        // Products the vendor BLAS takes are not the matvec's to fuse.
        let blas = self.driver.blas().is_some() && self.use_blas;
        let on_matvec = |call: &OpCall<'_>| {
            let ins: SmallVec<[TensorDesc; 4]> =
                call.inputs.iter().map(|t| t.desc.clone()).collect();
            !blas
                || call.inputs.iter().any(&packed)
                || plan_gemm(&call.op, &ins, &call.outputs[0].desc).is_none()
        };
        let mut i = 0;
        while i < calls.len() {
            if let Some(group) = fuse(&calls[i..], self.driver.warp_size(), &packed, &on_matvec) {
                let ptrs = group
                    .tensors
                    .iter()
                    .map(|t| self.buffer(t.buffer).map(|b| b.ptr))
                    .collect::<Result<SmallVec<[DevicePtr; 8]>>>()?;
                let ops: SmallVec<[&Op; 4]> =
                    calls[i..i + group.calls].iter().map(|c| &c.op).collect();
                let descs: SmallVec<[&TensorDesc; 8]> =
                    group.tensors.iter().map(|t| &t.desc).collect();
                let packed_weights = group.tensors.iter().filter(|t| packed(t)).count() as u64;
                let plan = self
                    .plans
                    .get_or_plan(&ops, &descs, &[packed_weights], || {
                        self.resolve(vec![group.plan()?])
                    })?;
                self.run_resolved(&plan, &ptrs)?;
                i += group.calls;
                continue;
            }
            let call = &calls[i];
            // SAFETY: the caller checked every call as `execute` does.
            unsafe { self.execute_valid(&call.op, &call.inputs, &call.outputs) }?;
            i += 1;
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        // Reading the status words waits for everything before them.
        self.read_back(None)
    }

    fn counters(&self) -> Option<WorkCounters> {
        Some(self.counters.snapshot())
    }
}
