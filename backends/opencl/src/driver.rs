//! The OpenCL [`Driver`]: one context and one in-order queue on one
//! device, buffers as `cl_mem` handles, the shared kernel tree built as
//! OpenCL C 1.2 at first use (once per context; `GpuBackend` caches the
//! programs), and NDRange launches of the shared plan's entry points.

use std::ffi::c_void;
use std::sync::Mutex;

use cl3::command_queue::{enqueue_nd_range_kernel, enqueue_read_buffer, enqueue_write_buffer};
use cl3::event::release_event;
use cl3::kernel::set_kernel_arg;
use cl3::memory::{create_buffer, release_mem_object, CL_MEM_READ_WRITE};
use cl3::types::{cl_event, cl_mem, CL_BLOCKING, CL_NON_BLOCKING};
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::Device;
use opencl3::kernel::Kernel;
use opencl3::program::Program;

use glmhal_gpu::driver::{Driver, HostRead, KernelArg};
use glmhal_gpu::plan::BLOCK;
use glmhal_gpu::DevicePtr;
use glmhal_gpu::{flatten, flattened_name, KernelFile};
use glmhal_hal::{HalError, Result};

use crate::loader::describe_code;

/// Lanes the kernels treat as one warp (`GLMHAL_WARP`; they sum through
/// local memory, OpenCL 1.2 having no subgroup shuffles).
pub const WARP: u32 = 32;

/// OpenCL status codes that mean the memory is not there.
const OUT_OF_MEMORY_CODES: [i32; 4] = [
    -4,  // CL_MEM_OBJECT_ALLOCATION_FAILURE
    -5,  // CL_OUT_OF_RESOURCES
    -6,  // CL_OUT_OF_HOST_MEMORY
    -61, // CL_INVALID_BUFFER_SIZE (larger than CL_DEVICE_MAX_MEM_ALLOC_SIZE)
];

/// Built programs and created kernels, by the handles `Driver` hands out.
#[derive(Default)]
struct Objects {
    programs: Vec<Program>,
    kernels: Vec<(Kernel, String)>,
}

/// Uploads at most this large are copied into host staging and enqueued
/// without waiting (a step's token ids and positions); larger ones (weights)
/// block instead of holding a second copy in host memory.
const STAGED_UPLOAD_MAX: usize = 64 << 10;

/// Host copies of enqueued uploads, kept until the queue has passed them.
#[derive(Default)]
struct Staging {
    /// Copies whose writes may still be in flight.
    pending: Vec<Vec<u8>>,
    /// Copies the queue is done with, reused by later uploads.
    free: Vec<Vec<u8>>,
}

/// One device's context and queue.
pub struct OpenClDriver {
    selector: String,
    staging: Mutex<Staging>,
    device: Device,
    // Dropped after the queue (fields drop in order).
    queue: CommandQueue,
    context: Context,
    /// Kernel arguments are per kernel object and not thread-safe to set,
    /// so setting them and enqueuing happen under this lock.
    objects: Mutex<Objects>,
    max_alloc: u64,
    options: String,
}

/// Releases an event the enqueue returned (no one waits on it: the queue is in order).
fn drop_event(event: cl_event) {
    if !event.is_null() {
        // SAFETY: `event` came from an enqueue call and is released once.
        let _ = unsafe { release_event(event) };
    }
}

impl OpenClDriver {
    /// A context and queue on `device`, numbered `index` in `glmhal devices`.
    pub fn open(index: usize, device: Device) -> Result<Self> {
        let selector = format!("opencl:{index}");
        let fail = |what: &str, e: opencl3::error_codes::ClError| {
            HalError::backend(selector.clone(), what, describe_code(e.0))
        };
        let (context, max_alloc, max_group) = crate::loader::serialized(|| {
            let context = Context::from_device(&device)?;
            let max_alloc = device.max_mem_alloc_size().unwrap_or(u64::MAX);
            let max_group = device.max_work_group_size().unwrap_or(0);
            Ok((context, max_alloc, max_group))
        })
        .map_err(|e| fail("clCreateContext", e))?;
        // SAFETY: `device` belongs to `context`; no properties (in order, no profiling).
        #[allow(deprecated)] // clCreateCommandQueue: the one every OpenCL 1.2 driver has
        let queue = unsafe { CommandQueue::create(&context, device.id(), 0) }
            .map_err(|e| fail("clCreateCommandQueue", e))?;
        if max_group < BLOCK as usize {
            return Err(HalError::Unavailable {
                backend: selector,
                reason: format!(
                    "the device runs at most {max_group} work-items per group; the kernels use {BLOCK}"
                ),
            });
        }
        Ok(OpenClDriver {
            selector,
            staging: Mutex::new(Staging::default()),
            device,
            queue,
            context,
            objects: Mutex::new(Objects::default()),
            max_alloc,
            // OpenCL C 1.2 everywhere; the kernels need no extension.
            options: format!("-cl-std=CL1.2 -DGLMHAL_WARP={WARP}"),
        })
    }

    fn objects(&self) -> Result<std::sync::MutexGuard<'_, Objects>> {
        self.objects
            .lock()
            .map_err(|_| HalError::backend(self.selector.clone(), "kernels", "cache poisoned"))
    }

    fn staging(&self) -> Result<std::sync::MutexGuard<'_, Staging>> {
        self.staging
            .lock()
            .map_err(|_| HalError::backend(self.selector.clone(), "uploads", "staging poisoned"))
    }

    /// Runs `wait` (a wait on the queue) and then frees the staged uploads
    /// enqueued before it began; uploads another thread enqueues meanwhile
    /// stay pending. After a failed wait nothing is freed.
    fn waiting<T>(&self, wait: impl FnOnce() -> Result<T>) -> Result<T> {
        let in_flight = std::mem::take(&mut self.staging()?.pending);
        let result = wait();
        let mut staging = self.staging()?;
        if result.is_ok() {
            staging.free.extend(in_flight);
        } else {
            staging.pending.extend(in_flight);
        }
        result
    }

    /// Enqueues a write of `data` to `offset` bytes into `dst`.
    ///
    /// # Safety
    /// The range lies inside the buffer (the backend checks it) and `data`
    /// stays valid until the write completes: at once when `blocking`,
    /// otherwise until a later wait on the queue.
    unsafe fn write(
        &self,
        dst: DevicePtr,
        offset: usize,
        data: &[u8],
        blocking: u32,
    ) -> Result<()> {
        // SAFETY: as the caller promises.
        let r = unsafe {
            enqueue_write_buffer(
                self.queue.get(),
                dst as usize as cl_mem,
                blocking,
                offset,
                data.len(),
                data.as_ptr().cast(),
                0,
                std::ptr::null(),
            )
        };
        self.check("clEnqueueWriteBuffer", r)
    }

    fn check(&self, what: &str, r: std::result::Result<cl_event, i32>) -> Result<()> {
        match r {
            Ok(event) => {
                drop_event(event);
                Ok(())
            }
            Err(code) => Err(HalError::backend(
                self.selector.clone(),
                what,
                describe_code(code),
            )),
        }
    }
}

impl OpenClDriver {
    /// The entry points of program `module` (from [`Driver::load_module`]).
    pub fn kernel_names(&self, module: usize) -> Result<Vec<String>> {
        let objects = self.objects()?;
        let program = objects.programs.get(module).ok_or_else(|| {
            HalError::invalid(self.selector.clone(), format!("no program {module}"))
        })?;
        let names = program.get_kernel_names().map_err(|e| {
            HalError::backend(
                self.selector.clone(),
                "CL_PROGRAM_KERNEL_NAMES",
                describe_code(e.0),
            )
        })?;
        Ok(names
            .trim_end_matches('\0')
            .split(';')
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect())
    }
}

impl Driver for OpenClDriver {
    fn backend(&self) -> &'static str {
        "opencl"
    }

    fn warp_size(&self) -> u32 {
        WARP
    }

    fn compile(&self, file: KernelFile) -> Result<Vec<u8>> {
        // The driver compiles at load; the "image" is the program text.
        Ok(flatten(file).into_bytes())
    }

    fn load_module(&self, image: &[u8]) -> Result<usize> {
        let text = std::str::from_utf8(image)
            .map_err(|_| HalError::invalid(self.selector.clone(), "kernel text is not UTF-8"))?;
        let program = Program::create_and_build_from_source(&self.context, text, &self.options)
            .map_err(|log| {
                HalError::backend(
                    self.selector.clone(),
                    format!("building {}", flattened_name(text).unwrap_or("kernels")),
                    log,
                )
            })?;
        let mut objects = self.objects()?;
        objects.programs.push(program);
        Ok(objects.programs.len() - 1)
    }

    fn function(&self, module: usize, name: &str) -> Result<usize> {
        let mut objects = self.objects()?;
        let program = objects.programs.get(module).ok_or_else(|| {
            HalError::invalid(self.selector.clone(), format!("no program {module}"))
        })?;
        let kernel = Kernel::create(program, name).map_err(|e| {
            HalError::backend(
                self.selector.clone(),
                format!("clCreateKernel({name})"),
                describe_code(e.0),
            )
        })?;
        // A driver may allow fewer work-items for a kernel than for the device.
        if let Ok(limit) = kernel.get_work_group_size(self.device.id()) {
            if limit < BLOCK as usize {
                return Err(HalError::Unsupported {
                    backend: self.selector.clone(),
                    op: name.into(),
                    reason: format!(
                        "the driver runs this kernel with at most {limit} work-items per group; it needs {BLOCK}"
                    ),
                });
            }
        }
        objects.kernels.push((kernel, name.to_string()));
        Ok(objects.kernels.len() - 1)
    }

    fn alloc(&self, bytes: usize) -> Result<DevicePtr> {
        let out_of_memory = || HalError::OutOfMemory {
            backend: self.selector.clone(),
            requested: bytes,
            available: usize::try_from(self.max_alloc).ok(),
        };
        if bytes as u64 > self.max_alloc {
            return Err(out_of_memory());
        }
        // SAFETY: a plain device allocation with no host pointer.
        match unsafe {
            create_buffer(
                self.context.get(),
                CL_MEM_READ_WRITE,
                bytes.max(1),
                std::ptr::null_mut(),
            )
        } {
            Ok(mem) => Ok(mem as usize as DevicePtr),
            Err(code) if OUT_OF_MEMORY_CODES.contains(&code) => Err(out_of_memory()),
            Err(code) => Err(HalError::backend(
                self.selector.clone(),
                "clCreateBuffer",
                describe_code(code),
            )),
        }
    }

    fn free(&self, ptr: DevicePtr) {
        // SAFETY: `ptr` is a cl_mem from `alloc`, released once.
        let _ = unsafe { release_mem_object(ptr as usize as cl_mem) };
    }

    fn upload(&self, dst: DevicePtr, offset: usize, data: &[u8]) -> Result<u64> {
        if data.len() > STAGED_UPLOAD_MAX {
            // SAFETY: a blocking write: `data` outlives it.
            unsafe { self.write(dst, offset, data, CL_BLOCKING) }?;
            return Ok(1);
        }
        let mut staging = self.staging()?;
        let mut copy = staging.free.pop().unwrap_or_default();
        copy.clear();
        copy.extend_from_slice(data);
        // SAFETY: `copy`'s heap bytes stay put in `pending` until a wait
        // has passed the write.
        let written = unsafe { self.write(dst, offset, &copy, CL_NON_BLOCKING) };
        staging.pending.push(copy);
        written.map(|()| 0)
    }

    fn download(&self, src: DevicePtr, offset: usize, out: &mut [u8]) -> Result<()> {
        self.download_many(&mut [HostRead { src, offset, out }])
            .map(|_| ())
    }

    fn download_many(&self, reads: &mut [HostRead<'_>]) -> Result<u64> {
        self.waiting(|| {
            let last = reads.len().saturating_sub(1);
            for (i, r) in reads.iter_mut().enumerate() {
                let blocking = if i == last {
                    CL_BLOCKING
                } else {
                    CL_NON_BLOCKING
                };
                // SAFETY: a read into `r.out`, valid for writes of its length
                // until this function returns, which is after the last,
                // blocking read; the in-order queue finishes every earlier
                // command (these reads included) before it.
                let res = unsafe {
                    enqueue_read_buffer(
                        self.queue.get(),
                        r.src as usize as cl_mem,
                        blocking,
                        r.offset,
                        r.out.len(),
                        r.out.as_mut_ptr().cast(),
                        0,
                        std::ptr::null(),
                    )
                };
                if let Err(e) = self.check("clEnqueueReadBuffer", res) {
                    // Reads already enqueued write into `reads`: let them land.
                    let _ = self.queue.finish();
                    return Err(e);
                }
            }
            Ok(u64::from(!reads.is_empty()))
        })
    }

    fn launch(
        &self,
        function: usize,
        grid: [u32; 3],
        block: u32,
        args: &[KernelArg<'_>],
    ) -> Result<()> {
        let objects = self.objects()?;
        let (kernel, name) = objects.kernels.get(function).ok_or_else(|| {
            HalError::invalid(self.selector.clone(), format!("no kernel {function}"))
        })?;
        for (i, arg) in args.iter().enumerate() {
            let mem;
            let (size, ptr): (usize, *const c_void) = match arg {
                KernelArg::Buffer(p) => {
                    mem = *p as usize as cl_mem;
                    (std::mem::size_of::<cl_mem>(), (&raw const mem).cast())
                }
                KernelArg::Value(bytes) => (bytes.len(), bytes.as_ptr().cast()),
            };
            // SAFETY: `ptr` points to `size` bytes laid out as argument i
            // is declared; the kernel is used only under the lock.
            unsafe { set_kernel_arg(kernel.get(), i as u32, size, ptr) }.map_err(|code| {
                HalError::backend(
                    self.selector.clone(),
                    format!("clSetKernelArg({name}, {i})"),
                    describe_code(code),
                )
            })?;
        }
        let global = [
            grid[0] as usize * block as usize,
            grid[1] as usize,
            grid[2] as usize,
        ];
        let local = [block as usize, 1, 1];
        // SAFETY: every argument is set; the sizes are three-element arrays.
        let r = unsafe {
            enqueue_nd_range_kernel(
                self.queue.get(),
                kernel.get(),
                3,
                std::ptr::null(),
                global.as_ptr(),
                local.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        match r {
            Err(code) if OUT_OF_MEMORY_CODES.contains(&code) => Err(HalError::OutOfMemory {
                backend: format!("{} {name}", self.selector),
                requested: 0,
                available: None,
            }),
            other => self.check(&format!("clEnqueueNDRangeKernel({name})"), other),
        }
    }

    fn synchronize(&self) -> Result<()> {
        self.waiting(|| {
            self.queue.finish().map_err(|e| {
                HalError::backend(self.selector.clone(), "clFinish", describe_code(e.0))
            })
        })
    }
}

impl Drop for OpenClDriver {
    fn drop(&mut self) {
        // Staged uploads must outlive the writes still reading them.
        let _ = self.queue.finish();
    }
}
