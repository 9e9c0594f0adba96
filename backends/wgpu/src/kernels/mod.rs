//! WGSL kernels, one file per op family, and what they share: how a tensor is
//! bound and described to a shader ([`Arg`]), and the recorded dispatch
//! ([`Launch`]) that [`crate::queue`] submits.
//!
//! Every storage binding is declared `read_write`: the executor keeps all
//! activations in one arena, so an op's inputs and output are often ranges of
//! the same buffer, and WebGPU only lets a buffer appear in several bindings
//! of one dispatch when every binding is writable. Each binding covers only
//! the bytes its tensor spans (from the previous aligned offset), so a large
//! arena never meets the adapter's binding-size limit.

pub(crate) mod activation;
pub(crate) mod attention;
pub(crate) mod convert;
pub(crate) mod elementwise;
pub(crate) mod embedding;
pub(crate) mod experts;
pub(crate) mod kv_cache;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod rope;
pub(crate) mod wgsl;

use glmhal_hal::{HalError, Result, TensorDesc};

pub(crate) use wgsl::Operand;

/// Threads per workgroup of every kernel.
pub(crate) const WORKGROUP: u32 = 64;

/// Workgroups per grid dimension (WebGPU's minimum limit).
pub(crate) const MAX_GROUPS: u32 = 65535;

/// A tensor as an op receives it: where it lives and how to read it.
#[derive(Clone, Copy)]
pub(crate) struct Tensor<'a> {
    pub desc: &'a TensorDesc,
    pub buffer: &'a wgpu::Buffer,
}

/// Binding facts of the adapter that kernels must respect.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binding {
    /// Storage bindings must start at a multiple of this.
    pub align: u64,
    /// Bytes one storage binding may span.
    pub max_size: u64,
    /// Whether f16 is bound natively (`SHADER_F16`).
    pub native_f16: bool,
}

impl Binding {
    /// The bytes `[start, end)` to bind for `desc`: from the aligned offset at
    /// or below its first byte to the word after its last.
    pub fn span(&self, desc: &TensorDesc) -> (u64, u64) {
        let range = desc.byte_range();
        let start = range.start as u64 / self.align * self.align;
        (start, (range.end as u64).div_ceil(4) * 4)
    }

    /// Whether `desc` fits one binding.
    pub fn fits(&self, desc: &TensorDesc) -> bool {
        let (start, end) = self.span(desc);
        end - start <= self.max_size
    }
}

/// A view as the shaders see it (WGSL struct `View`): up to four dims, in
/// elements, with the offset from the binding's start (in bytes for
/// quantized dtypes, whose loads address blocks).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct View {
    pub offset: u32,
    pub cols: u32,
    pub col_stride: u32,
    pub d1: u32,
    pub d2: u32,
    pub s0: u32,
    pub s1: u32,
    pub s2: u32,
}

fn u32_of(x: usize, what: &str) -> Result<u32> {
    u32::try_from(x).map_err(|_| {
        HalError::invalid(
            "wgpu",
            format!("{what} {x} is too large for the kernels' 32-bit indexing"),
        )
    })
}

impl View {
    /// The view of `desc` read as `shape`: dims where `desc` has size 1
    /// repeat (stride 0). The offset is filled in when the tensor is bound.
    pub fn broadcast(desc: &TensorDesc, shape: &[usize]) -> Result<Self> {
        let (dims, strides) = desc.folded4(shape).ok_or_else(|| {
            HalError::invalid(
                "wgpu",
                format!("views of rank {} are not supported", shape.len()),
            )
        })?;
        u32_of(desc.span_elems(), "a tensor span of")?;
        Ok(View {
            offset: 0,
            cols: u32_of(dims[3], "a dimension of")?,
            col_stride: u32_of(strides[3], "a stride of")?,
            d1: u32_of(dims[1], "a dimension of")?,
            d2: u32_of(dims[2], "a dimension of")?,
            s0: u32_of(strides[0], "a stride of")?,
            s1: u32_of(strides[1], "a stride of")?,
            s2: u32_of(strides[2], "a stride of")?,
        })
    }

    /// Its eight words, in the WGSL struct's order.
    pub fn words(&self) -> [u32; 8] {
        [
            self.offset,
            self.cols,
            self.col_stride,
            self.d1,
            self.d2,
            self.s0,
            self.s1,
            self.s2,
        ]
    }
}

/// One bound tensor of a launch.
pub(crate) struct Arg {
    pub operand: Operand,
    pub view: View,
    pub buffer: wgpu::Buffer,
    pub start: u64,
    pub size: u64,
}

impl Arg {
    /// Binds `t` as operand `operand`, read as `shape`.
    pub fn new(
        operand: Operand,
        t: Tensor<'_>,
        shape: &[usize],
        binding: &Binding,
    ) -> Result<Self> {
        let desc = t.desc;
        let mut view = View::broadcast(desc, shape)?;
        let (start, end) = binding.span(desc);
        if end - start > binding.max_size {
            return Err(HalError::invalid(
                "wgpu",
                format!(
                    "{} spans {} bytes, more than one storage binding of this adapter ({})",
                    desc.describe(),
                    end - start,
                    binding.max_size
                ),
            ));
        }
        let skip = desc.offset as u64 - start;
        let elem = desc.dtype.block_bytes() as u64;
        view.offset = if desc.dtype.is_quantized() {
            u32_of(skip as usize, "an offset of")?
        } else if skip.is_multiple_of(elem) {
            u32_of((skip / elem) as usize, "an offset of")?
        } else {
            return Err(HalError::invalid(
                "wgpu",
                format!(
                    "{} starts at byte {}, not a multiple of its element size",
                    desc.describe(),
                    desc.offset
                ),
            ));
        };
        Ok(Arg {
            operand,
            view,
            buffer: t.buffer.clone(),
            start,
            size: end - start,
        })
    }

    /// Binds `t` as a read operand with its own shape.
    pub fn read(name: &'static str, t: Tensor<'_>, binding: &Binding) -> Result<Self> {
        Arg::new(Operand::read(name, t.desc.dtype), t, &t.desc.shape, binding)
    }

    /// Binds `t` as the written operand.
    pub fn write(name: &'static str, t: Tensor<'_>, binding: &Binding) -> Result<Self> {
        Arg::new(
            Operand::write(name, t.desc.dtype),
            t,
            &t.desc.shape,
            binding,
        )
    }
}

/// How many workgroups a launch runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Grid {
    /// `n` threads in 64-wide groups, folded into x and y (WGSL `flat`).
    Threads(u32),
    /// `n` workgroups, folded into x and y (WGSL `group_index`).
    Groups(u32),
    /// Exactly these workgroup counts.
    Exact([u32; 3]),
}

impl Grid {
    /// Workgroup counts per dimension.
    pub fn counts(self) -> [u32; 3] {
        let fold = |groups: u32| {
            let groups = groups.max(1);
            [
                groups.min(MAX_GROUPS),
                groups.div_ceil(MAX_GROUPS).max(1),
                1,
            ]
        };
        match self {
            Grid::Threads(n) => fold(n.div_ceil(WORKGROUP)),
            Grid::Groups(n) => fold(n),
            Grid::Exact(c) => c,
        }
    }
}

/// The static part of a kernel: its name, uniform scalars and WGSL body.
pub(crate) struct Kernel {
    pub name: &'static str,
    /// Scalar fields of the uniform after the operand views: (name, WGSL type).
    pub scalars: &'static [(&'static str, &'static str)],
    /// Shared WGSL the body uses ([`wgsl::REDUCE_WGSL`], ...).
    pub helpers: &'static [&'static str],
    /// Whether the body reports data errors (binds the status buffer last).
    pub status: bool,
    pub body: &'static str,
}

/// One recorded dispatch.
pub(crate) struct Launch {
    /// Pipeline cache key: the kernel and its operand dtypes.
    pub key: String,
    /// The kernel, to generate the module on a cache miss.
    pub kernel: &'static Kernel,
    pub args: Vec<Arg>,
    /// The uniform's words: each argument's view, then the scalars.
    pub params: Vec<u32>,
    pub grid: Grid,
}

impl Launch {
    /// A launch of `kernel` over `args` with `scalars` (as many as the kernel declares).
    pub fn new(
        kernel: &'static Kernel,
        args: Vec<Arg>,
        scalars: &[u32],
        grid: Grid,
        native_f16: bool,
    ) -> Self {
        debug_assert_eq!(scalars.len(), kernel.scalars.len(), "{}", kernel.name);
        let operands: Vec<Operand> = args.iter().map(|a| a.operand).collect();
        let mut params: Vec<u32> = args.iter().flat_map(|a| a.view.words()).collect();
        params.extend_from_slice(scalars);
        Launch {
            key: wgsl::key(kernel.name, &operands, native_f16),
            kernel,
            args,
            params,
            grid,
        }
    }

    /// The WGSL module of this launch.
    pub fn source(&self, native_f16: bool) -> String {
        let operands: Vec<Operand> = self.args.iter().map(|a| a.operand).collect();
        let mut uniform = String::from("struct Params { ");
        for a in &self.args {
            uniform += &format!("{}: View, ", a.operand.name);
        }
        for (name, ty) in self.kernel.scalars {
            uniform += &format!("{name}: {ty}, ");
        }
        uniform += "}\n@group(0) @binding(0) var<uniform> p: Params;\n";
        for helper in self.kernel.helpers {
            uniform += helper;
        }
        if self.kernel.status {
            uniform += &format!(
                "@group(0) @binding({}) var<storage, read_write> status: array<atomic<u32>, 4>;\n{}",
                self.args.len() + 1,
                wgsl::STATUS_WGSL
            );
        }
        wgsl::module(&operands, &(uniform + self.kernel.body), native_f16)
    }
}

/// f32 bits of a parameter, as the uniform carries it.
pub(crate) fn f32_bits(x: f64) -> u32 {
    (x as f32).to_bits()
}
