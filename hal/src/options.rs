//! How backends are opened: every setting a user can make, typed and in one
//! place. The CLI fills [`BackendOptions`] from its flags and the `GLMHAL_*`
//! variables ([`BackendOptions::from_variables`], the one mapping); backends
//! receive it in [`crate::BackendProvider::probe`] and
//! [`crate::BackendProvider::open`] and never read the environment for
//! these settings themselves.

use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{HalError, Result};

/// Every setting of every backend; [`Default`] is what a user who sets
/// nothing gets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackendOptions {
    /// The CPU backend.
    pub cpu: CpuOptions,
    /// The wgpu backend.
    pub wgpu: WgpuOptions,
    /// The CUDA, HIP and OpenCL backends and the kernel compilers.
    pub gpu: GpuOptions,
}

/// Settings of the CPU backend.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuOptions {
    /// Worker threads (`GLMHAL_CPU_THREADS`); `None`: every core the process may use.
    pub threads: Option<usize>,
    /// A cap on the kernels' instruction set (`GLMHAL_CPU_ISA`), so a
    /// machine with AVX-512 can check its AVX2 and portable paths too; a cap
    /// above what the CPU has changes nothing. `None`: the best it has.
    pub isa: Option<CpuIsa>,
    /// How Q8_0/Q4_0 products quantize their activations (`GLMHAL_CPU_ACTIVATIONS`).
    pub activations: ActivationBits,
}

/// Instruction-set levels of the CPU kernels, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuIsa {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 (with VNNI and BF16 where the CPU has them).
    Avx512,
}

impl CpuIsa {
    /// Every level, in increasing order.
    pub const ALL: [CpuIsa; 3] = [CpuIsa::Portable, CpuIsa::Avx2, CpuIsa::Avx512];

    /// The name settings and reports use.
    pub fn name(self) -> &'static str {
        match self {
            CpuIsa::Portable => "portable",
            CpuIsa::Avx2 => "avx2",
            CpuIsa::Avx512 => "avx512",
        }
    }
}

impl FromStr for CpuIsa {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        named(s, &CpuIsa::ALL, CpuIsa::name)
    }
}

/// How the CPU's Q8_0/Q4_0 products quantize their activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActivationBits {
    /// Blocks of 32 int8, `scale = max|x| / 127`: what llama.cpp does for
    /// these weights, and one byte product per weight.
    #[default]
    Int8,
    /// Blocks of 32 int16, `scale = max|x| / 32767`: rounding error near
    /// f32's, at twice the integer work per weight.
    Int16,
}

impl ActivationBits {
    /// Both choices.
    pub const ALL: [ActivationBits; 2] = [ActivationBits::Int8, ActivationBits::Int16];

    /// The name settings and reports use.
    pub fn name(self) -> &'static str {
        match self {
            ActivationBits::Int8 => "int8",
            ActivationBits::Int16 => "int16",
        }
    }
}

impl FromStr for ActivationBits {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        named(s, &ActivationBits::ALL, ActivationBits::name)
    }
}

/// Settings of the wgpu backend.
#[derive(Clone, Debug, PartialEq)]
pub struct WgpuOptions {
    /// Caps the bytes one storage binding may span below the adapter's
    /// limit, to exercise splitting on small tensors (`GLMHAL_WGPU_MAX_BINDING`).
    pub max_binding: Option<u64>,
    /// Binds f16 natively where the adapter has `SHADER_F16`; `false`
    /// (`GLMHAL_WGPU_NATIVE_F16=0`) unpacks f16 from words instead.
    pub native_f16: bool,
}

impl Default for WgpuOptions {
    fn default() -> Self {
        WgpuOptions {
            max_binding: None,
            native_f16: true,
        }
    }
}

/// Settings of the CUDA, HIP and OpenCL backends and of the kernel compilers.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuOptions {
    /// Float products go to the vendor BLAS where it loaded; `false`
    /// (`GLMHAL_GPU_GEMM=kernels`) keeps every product on glmhal's kernels.
    pub vendor_blas: bool,
    /// NVRTC's library (`GLMHAL_NVRTC`); `None`: searched.
    pub nvrtc: Option<PathBuf>,
    /// `ptxas` for register reports (`GLMHAL_PTXAS`).
    pub ptxas: Ptxas,
    /// cuBLAS's library (`GLMHAL_CUBLAS`); `None`: searched.
    pub cublas: Option<PathBuf>,
    /// rocBLAS's library (`GLMHAL_ROCBLAS`); `None`: searched.
    pub rocblas: Option<PathBuf>,
    /// A HIP-capable clang (`GLMHAL_HIP_CLANG`); `None`: searched.
    pub hip_clang: Option<PathBuf>,
    /// The HIP device libraries' `amdgcn/bitcode` (`GLMHAL_HIP_DEVICE_LIBS`); `None`: searched.
    pub hip_device_libs: Option<PathBuf>,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            vendor_blas: true,
            nvrtc: None,
            ptxas: Ptxas::Search,
            cublas: None,
            rocblas: None,
            hip_clang: None,
            hip_device_libs: None,
        }
    }
}

/// Which `ptxas` assembles PTX for register reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Ptxas {
    /// Looked for on `PATH`, in the CUDA toolkit and beside NVRTC.
    Search,
    /// This file.
    At(PathBuf),
    /// None: compile to PTX only (no register report, much faster).
    Skip,
}

/// The variables [`BackendOptions::from_variables`] reads, for help texts.
pub const VARIABLES: [&str; 12] = [
    "GLMHAL_CPU_THREADS",
    "GLMHAL_CPU_ISA",
    "GLMHAL_CPU_ACTIVATIONS",
    "GLMHAL_WGPU_MAX_BINDING",
    "GLMHAL_WGPU_NATIVE_F16",
    "GLMHAL_GPU_GEMM",
    "GLMHAL_NVRTC",
    "GLMHAL_PTXAS",
    "GLMHAL_CUBLAS",
    "GLMHAL_ROCBLAS",
    "GLMHAL_HIP_CLANG",
    "GLMHAL_HIP_DEVICE_LIBS",
];

impl BackendOptions {
    /// The options the `GLMHAL_*` variables ask for, read through `lookup`
    /// (the CLI passes the process environment; tests pass a map). An empty
    /// value counts as unset; a value that does not parse is an error naming
    /// the variable.
    pub fn from_variables(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |var: &str| lookup(var).filter(|v| !v.trim().is_empty());
        let parsed = |var: &'static str, what: &str| -> Result<Option<u64>> {
            get(var)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| HalError::invalid(var, format!("`{v}` is not {what}")))
                })
                .transpose()
        };
        let threads = parsed("GLMHAL_CPU_THREADS", "a positive number of threads")?;
        if threads == Some(0) {
            return Err(HalError::invalid(
                "GLMHAL_CPU_THREADS",
                "`0` is not a positive number of threads",
            ));
        }
        let cpu = CpuOptions {
            threads: threads.map(|n| n as usize),
            isa: get("GLMHAL_CPU_ISA")
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|e| HalError::invalid("GLMHAL_CPU_ISA", e))
                })
                .transpose()?,
            activations: get("GLMHAL_CPU_ACTIVATIONS")
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|e| HalError::invalid("GLMHAL_CPU_ACTIVATIONS", e))
                })
                .transpose()?
                .unwrap_or_default(),
        };
        let wgpu = WgpuOptions {
            max_binding: parsed("GLMHAL_WGPU_MAX_BINDING", "a byte count")?,
            native_f16: get("GLMHAL_WGPU_NATIVE_F16").is_none_or(|v| v.trim() != "0"),
        };
        let path = |var: &str| get(var).map(PathBuf::from);
        let gpu = GpuOptions {
            vendor_blas: get("GLMHAL_GPU_GEMM").is_none_or(|v| v.trim() != "kernels"),
            nvrtc: path("GLMHAL_NVRTC"),
            ptxas: match get("GLMHAL_PTXAS") {
                None => Ptxas::Search,
                Some(v) if v.trim() == "none" => Ptxas::Skip,
                Some(v) => Ptxas::At(PathBuf::from(v)),
            },
            cublas: path("GLMHAL_CUBLAS"),
            rocblas: path("GLMHAL_ROCBLAS"),
            hip_clang: path("GLMHAL_HIP_CLANG"),
            hip_device_libs: path("GLMHAL_HIP_DEVICE_LIBS"),
        };
        Ok(BackendOptions { cpu, wgpu, gpu })
    }
}

/// The option of `options` whose `name` is `value`, or why there is none.
fn named<T: Copy>(
    value: &str,
    options: &[T],
    name: fn(T) -> &'static str,
) -> std::result::Result<T, String> {
    options
        .iter()
        .copied()
        .find(|o| name(*o) == value)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|o| name(*o)).collect();
            format!("{value:?} is not one of {}", names.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<BackendOptions> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BackendOptions::from_variables(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_the_default() {
        assert_eq!(from(&[]).unwrap(), BackendOptions::default());
        assert_eq!(
            from(&[("GLMHAL_CPU_ISA", " ")]).unwrap(),
            BackendOptions::default()
        );
    }

    #[test]
    fn every_variable_reaches_its_field() {
        let o = from(&[
            ("GLMHAL_CPU_THREADS", "3"),
            ("GLMHAL_CPU_ISA", "avx2"),
            ("GLMHAL_CPU_ACTIVATIONS", "int16"),
            ("GLMHAL_WGPU_MAX_BINDING", "4096"),
            ("GLMHAL_WGPU_NATIVE_F16", "0"),
            ("GLMHAL_GPU_GEMM", "kernels"),
            ("GLMHAL_NVRTC", "/x/libnvrtc.so"),
            ("GLMHAL_PTXAS", "none"),
            ("GLMHAL_ROCBLAS", "/r/librocblas.so"),
        ])
        .unwrap();
        assert_eq!(o.cpu.threads, Some(3));
        assert_eq!(o.cpu.isa, Some(CpuIsa::Avx2));
        assert_eq!(o.cpu.activations, ActivationBits::Int16);
        assert_eq!(o.wgpu.max_binding, Some(4096));
        assert!(!o.wgpu.native_f16 && !o.gpu.vendor_blas);
        assert_eq!(o.gpu.nvrtc, Some(PathBuf::from("/x/libnvrtc.so")));
        assert_eq!(o.gpu.ptxas, Ptxas::Skip);
        assert_eq!(o.gpu.rocblas, Some(PathBuf::from("/r/librocblas.so")));
    }

    #[test]
    fn a_bad_value_names_its_variable_and_the_choices() {
        for (var, value, words) in [
            ("GLMHAL_CPU_THREADS", "lots", "positive number"),
            ("GLMHAL_CPU_THREADS", "0", "positive number"),
            ("GLMHAL_CPU_ISA", "sse", "portable, avx2, avx512"),
            ("GLMHAL_CPU_ACTIVATIONS", "i8", "int8, int16"),
            ("GLMHAL_WGPU_MAX_BINDING", "big", "byte count"),
        ] {
            let e = from(&[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains(words), "{e}");
        }
    }
}
