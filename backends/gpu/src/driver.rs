//! What a GPU vendor driver must provide to the one GPU backend: memory,
//! copies, modules, launches on one in-order stream, and optionally a vendor
//! BLAS. CUDA and HIP implement it once together ([`crate::module_api`]),
//! OpenCL on its own.

use std::ffi::c_void;

use glmhal_hal::Result;
use smallvec::SmallVec;

use crate::blas::VendorBlas;
use crate::KernelFile;

pub use crate::DevicePtr;

/// One kernel argument as the driver receives it.
#[derive(Clone, Copy, Debug)]
pub enum KernelArg<'a> {
    /// A whole allocation from [`Driver::alloc`] (views carry offsets).
    Buffer(DevicePtr),
    /// A value passed by copy, laid out as the kernel declares it.
    Value(&'a [u8]),
}

/// Argument pointers for launch APIs that take an array of pointers to each
/// argument (`cuLaunchKernel`, `hipModuleLaunchKernel`): a buffer is its
/// device address, held here; a value points into the caller's bytes.
/// Nothing is allocated for up to 32 arguments.
pub struct ParamBlock<'a> {
    args: &'a [KernelArg<'a>],
    addresses: SmallVec<[u64; 32]>,
}

impl<'a> ParamBlock<'a> {
    /// The addresses of `args`' buffers, held for [`ParamBlock::pointers`].
    pub fn new(args: &'a [KernelArg<'a>]) -> Self {
        let addresses = args
            .iter()
            .map(|a| match a {
                KernelArg::Buffer(ptr) => *ptr,
                KernelArg::Value(_) => 0,
            })
            .collect();
        ParamBlock { args, addresses }
    }

    /// One pointer per argument, valid while `self` lives and is not moved.
    /// The launch APIs only read through them.
    pub fn pointers(&mut self) -> SmallVec<[*mut c_void; 32]> {
        self.args
            .iter()
            .zip(self.addresses.iter_mut())
            .map(|(a, address)| match a {
                KernelArg::Buffer(_) => (address as *mut u64).cast(),
                KernelArg::Value(bytes) => bytes.as_ptr().cast_mut().cast(),
            })
            .collect()
    }
}

/// One device-to-host copy of a batch ([`Driver::download_many`]).
pub struct HostRead<'a> {
    /// The allocation read from.
    pub src: DevicePtr,
    /// Bytes into it.
    pub offset: usize,
    /// Where the bytes go (its length is the copy's).
    pub out: &'a mut [u8],
}

/// One vendor driver on one device. Every call runs on the device's one
/// stream, in order. Copies are never empty (the backend skips those).
pub trait Driver: Send + Sync + 'static {
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
    /// Copies host bytes to the device, `offset` bytes into `dst`; later
    /// work on the stream sees them. Returns how many times the host waited
    /// for the device (0 when the copy was only enqueued, 1 when it blocked).
    fn upload(&self, dst: DevicePtr, offset: usize, data: &[u8]) -> Result<u64>;
    /// Copies device bytes from `offset` bytes into `src` to the host,
    /// waiting for earlier work.
    fn download(&self, src: DevicePtr, offset: usize, out: &mut [u8]) -> Result<()>;
    /// Makes every copy of `reads` after earlier work; returns how many
    /// times the host waited. The default copies one by one, each a wait;
    /// a driver that can enqueue copies waits once.
    fn download_many(&self, reads: &mut [HostRead<'_>]) -> Result<u64> {
        for r in reads.iter_mut() {
            self.download(r.src, r.offset, r.out)?;
        }
        Ok(reads.len() as u64)
    }
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
