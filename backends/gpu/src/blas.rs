//! Dense products through the vendor's BLAS (cuBLAS on NVIDIA, rocBLAS on
//! AMD and Hygon): which `mat_mul` / `batched_mat_mul` calls can go there and
//! the column-major GEMM that computes them. Shared by both vendors, so the
//! row-major → column-major translation is written (and tested) once.
//!
//! BLAS is column-major. A row-major `C[M,N] = A[M,K]·B[K,N]` is the
//! column-major `Cᵀ(N×M) = Bᵀ(N×K)·Aᵀ(K×M)`, so the library's first operand
//! is our `B`, its second our `A`, with `m = N`, `n = M`. A row-major matrix
//! with unit column stride is, read column-major, its own transpose (no
//! transpose flag); one with unit row stride (a transposed view, such as a
//! `[N,K]` weight read as `Wᵀ`) is passed with the transpose flag.

use std::path::{Path, PathBuf};

use glmhal_hal::{DType, Op, Result, TensorDesc};
use libloading::Library;

use crate::rtc::candidates;
use crate::vendor_env::ld_library_path;
use crate::DevicePtr;

/// One operand of a GEMM call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operand {
    /// Index into the op's tensors (inputs, then the output).
    pub tensor: usize,
    /// Byte offset from the buffer start.
    pub offset: u64,
    /// Whether the library applies its transpose flag.
    pub transpose: bool,
    /// Leading dimension (elements).
    pub ld: i32,
    /// Elements between consecutive matrices of a batch (0 repeats one).
    pub batch_stride: i64,
}

/// A strided-batched column-major GEMM, `C = A·B + beta·C`, computed in f32
/// with f32 `alpha = 1` and `beta`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gemm {
    /// The dtype of A and B: f32, f16 or bf16.
    pub inputs: DType,
    /// The dtype of C: the inputs' or f32.
    pub output: DType,
    /// Rows of the column-major result (our N).
    pub m: i32,
    /// Columns of the column-major result (our M).
    pub n: i32,
    /// The contracted dimension.
    pub k: i32,
    /// First operand (our B, or Wᵀ).
    pub a: Operand,
    /// Second operand (our A, the activations).
    pub b: Operand,
    /// Result (our output); never transposed.
    pub c: Operand,
    /// Matrices in the batch.
    pub batch: i32,
    /// 0, or 1 when the output was first filled with the broadcast bias.
    pub beta: f32,
    /// For a `mat_mul` with bias: the bias read as `[M,N]` (row stride 0),
    /// cast into the output before the GEMM adds to it. Input index 2.
    pub bias_fill: Option<TensorDesc>,
}

impl Gemm {
    /// Device address of `operand` given the tensors' buffer addresses.
    pub fn address(operand: &Operand, buffers: &[DevicePtr]) -> Option<DevicePtr> {
        buffers.get(operand.tensor).map(|p| p + operand.offset)
    }
}

/// The GEMM computing `op`, or `None` when it must stay on the kernels:
/// quantized or mixed dtypes, views BLAS cannot describe (neither dim of an
/// operand unit-strided, overlapping output batches), or sizes past `i32`.
pub fn plan_gemm(op: &Op, ins: &[TensorDesc], out: &TensorDesc) -> Option<Gemm> {
    let (a, b, batch) = match op {
        // x [M,K] · Wᵀ, W [N,K]: B = Wᵀ is [K,N] with strides (w_k, w_n).
        Op::MatMul { bias } => {
            let (x, w) = (ins.first()?, ins.get(1)?);
            if x.rank() != 2 || w.rank() != 2 || (*bias && ins.len() < 3) {
                return None;
            }
            let b = Matrix {
                rows: w.shape[1],
                cols: w.shape[0],
                row_stride: w.strides[1],
                col_stride: w.strides[0],
                batch_stride: 0,
            };
            (Matrix::of2(x), b, 1usize)
        }
        Op::BatchedMatMul => {
            let (a, b) = (ins.first()?, ins.get(1)?);
            if a.rank() != 3 || b.rank() != 3 || out.rank() != 3 {
                return None;
            }
            (Matrix::of3(a), Matrix::of3(b), a.shape[0])
        }
        _ => return None,
    };
    // Both ops take A as input 0 and B (or W) as input 1.
    let b_index = 1;
    let dtype = ins[0].dtype;
    if !matches!(dtype, DType::F32 | DType::F16 | DType::Bf16)
        || ins[1].dtype != dtype
        || !(out.dtype == dtype || out.dtype == DType::F32)
    {
        return None;
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 || k == 0 || b.rows != k {
        return None;
    }
    let c = Matrix::of_output(out)?;
    // Column-major: C'(n_ × m_) = B'(N×K) · A'(K×M).
    let (a_t, a_ld) = b.column_major_transposed()?;
    let (b_t, b_ld) = a.column_major_transposed()?;
    if c.col_stride != 1 && n != 1 {
        return None;
    }
    let c_ld = if m == 1 {
        c.row_stride.max(n)
    } else {
        c.row_stride
    };
    if c_ld < n {
        return None;
    }
    // Batches of the output must not overlap.
    if batch > 1 && c.batch_stride < c_ld * (m - 1) + n {
        return None;
    }
    let int = |x: usize| i32::try_from(x).ok();
    let long = |x: usize| i64::try_from(x).ok();
    let element = |d: &TensorDesc| {
        d.offset
            .is_multiple_of(d.dtype.block_bytes())
            .then_some(d.offset)
    };
    let bias_fill = match op {
        Op::MatMul { bias: true } => {
            let bias = ins.get(2)?;
            if bias.rank() != 1 || bias.shape[0] != n {
                return None;
            }
            Some(TensorDesc::strided(
                bias.dtype,
                &[m, n],
                &[0, bias.strides[0]],
                bias.offset,
            ))
        }
        _ => None,
    };
    let out_index = ins.len();
    Some(Gemm {
        inputs: dtype,
        output: out.dtype,
        m: int(n)?,
        n: int(m)?,
        k: int(k)?,
        a: Operand {
            tensor: b_index,
            offset: element(&ins[b_index])? as u64,
            transpose: a_t,
            ld: int(a_ld)?,
            batch_stride: if batch > 1 { long(b.batch_stride)? } else { 0 },
        },
        b: Operand {
            tensor: 0,
            offset: element(&ins[0])? as u64,
            transpose: b_t,
            ld: int(b_ld)?,
            batch_stride: if batch > 1 { long(a.batch_stride)? } else { 0 },
        },
        c: Operand {
            tensor: out_index,
            offset: element(out)? as u64,
            transpose: false,
            ld: int(c_ld)?,
            batch_stride: if batch > 1 { long(c.batch_stride)? } else { 0 },
        },
        batch: int(batch)?,
        beta: if bias_fill.is_some() { 1.0 } else { 0.0 },
        bias_fill,
    })
}

/// A row-major logical matrix `rows × cols` with element strides.
#[derive(Clone, Copy, Debug)]
struct Matrix {
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
    batch_stride: usize,
}

impl Matrix {
    fn of2(d: &TensorDesc) -> Self {
        Matrix {
            rows: d.shape[0],
            cols: d.shape[1],
            row_stride: d.strides[0],
            col_stride: d.strides[1],
            batch_stride: 0,
        }
    }

    fn of3(d: &TensorDesc) -> Self {
        Matrix {
            rows: d.shape[1],
            cols: d.shape[2],
            row_stride: d.strides[1],
            col_stride: d.strides[2],
            batch_stride: if d.shape[0] > 1 { d.strides[0] } else { 0 },
        }
    }

    fn of_output(d: &TensorDesc) -> Option<Self> {
        match d.rank() {
            2 => Some(Self::of2(d)),
            3 => Some(Self::of3(d)),
            _ => None,
        }
    }

    /// This matrix's transpose as a column-major operand: `(transpose flag,
    /// leading dimension)`. Unit column stride: stored column-major as the
    /// transpose itself (`cols × rows`, ld = row stride), no flag. Unit row
    /// stride: stored column-major as itself (`rows × cols`, ld = column
    /// stride), flag set. A dim of size 1 may have any stride.
    fn column_major_transposed(&self) -> Option<(bool, usize)> {
        let (r, c) = (self.rows, self.cols);
        if self.col_stride == 1 || c == 1 {
            let ld = if r == 1 {
                self.row_stride.max(c)
            } else {
                self.row_stride
            };
            if ld >= c.max(1) {
                return Some((false, ld));
            }
        }
        if self.row_stride == 1 || r == 1 {
            let ld = if c == 1 {
                self.col_stride.max(r)
            } else {
                self.col_stride
            };
            if ld >= r.max(1) {
                return Some((true, ld));
            }
        }
        None
    }
}

/// A vendor BLAS library bound to a device runtime's stream.
pub trait VendorBlas: Send + Sync {
    /// Library and version, for device listings (`cuBLAS 12.9 (libcublas.so.12)`).
    fn describe(&self) -> String;
    /// Enqueues `gemm` with the operands at these device addresses (offsets
    /// already applied).
    fn gemm(&self, gemm: &Gemm, a: DevicePtr, b: DevicePtr, c: DevicePtr) -> Result<()>;
}

/// A vendor BLAS's `*StatusString` entry point (cuBLAS and rocBLAS share the shape).
pub type StatusStringFn = unsafe extern "C" fn(std::ffi::c_int) -> *const std::ffi::c_char;

/// `Err` naming `library`, `what` and the status with the library's own
/// words (when it has a status-string entry point) unless `status` is 0.
pub fn check_status(
    selector: &str,
    library: &str,
    what: &str,
    status: std::ffi::c_int,
    words: Option<StatusStringFn>,
) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    let text = words
        // SAFETY: both libraries return a static NUL-terminated string or null.
        .map(|f| unsafe { f(status) })
        .filter(|p| !p.is_null())
        // SAFETY: non-null, NUL-terminated, static.
        .map(|p| {
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Err(glmhal_hal::HalError::backend(
        selector,
        what,
        format!("{library} status {status} {text}"),
    ))
}

/// The vendor BLAS in `slot`, opened by `open` at the first call; when it
/// cannot be opened, stderr says why once and products stay on the kernels.
pub fn opened<'a, B: VendorBlas + 'static>(
    slot: &'a std::sync::OnceLock<Option<B>>,
    selector: &str,
    open: impl FnOnce() -> Result<B>,
) -> Option<&'a dyn VendorBlas> {
    slot.get_or_init(|| match open() {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("{selector}: products run on glmhal's kernels: {e}");
            None
        }
    })
    .as_ref()
    .map(|b| b as &dyn VendorBlas)
}

/// How a device's float products run, for `glmhal devices`: the vendor
/// BLAS when `library` loaded and `vendor_blas` allows it, otherwise the
/// tree's kernels and why.
pub fn gemm_feature(library: std::result::Result<&str, &str>, vendor_blas: bool) -> String {
    match library {
        Ok(path) if vendor_blas => format!("gemm=vendor BLAS ({path})"),
        Ok(_) => "gemm=kernels (vendor BLAS turned off: GLMHAL_GPU_GEMM=kernels)".into(),
        Err(why) => format!("gemm=kernels ({why})"),
    }
}

/// Opens a vendor BLAS library: the file `explicit` names (set through
/// `variable`), then each of `names` in `LD_LIBRARY_PATH`, in `dirs`, then
/// through the system search. Returns the library and the path it came
/// from, or every reason it failed.
pub fn open_library(
    explicit: Option<&Path>,
    variable: &str,
    dirs: &[PathBuf],
    names: &[&str],
) -> std::result::Result<(Library, String), String> {
    let mut files: Vec<PathBuf> = explicit.map(Path::to_path_buf).into_iter().collect();
    let mut search = ld_library_path();
    search.extend_from_slice(dirs);
    files.extend(
        candidates(&search, names)
            .into_iter()
            .filter(|f| f.exists()),
    );
    files.extend(names.iter().map(PathBuf::from));
    let mut failures = Vec::new();
    for file in files {
        // SAFETY: loading a vendor BLAS runs its initializers, which have no preconditions.
        match unsafe { Library::new(&file) } {
            Ok(lib) => return Ok((lib, file.display().to_string())),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(format!(
        "{} not found (set {variable} to the library): {}",
        names.first().copied().unwrap_or("the library"),
        failures.last().cloned().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(op: Op, ins: &[TensorDesc], out: &TensorDesc) -> Gemm {
        plan_gemm(&op, ins, out).unwrap_or_else(|| panic!("{op:?} should map to BLAS"))
    }

    #[test]
    fn linear_layer_is_transposed_weight_times_activations() {
        let x = TensorDesc::contiguous(DType::F16, &[7, 64]);
        let w = TensorDesc::contiguous(DType::F16, &[96, 64]);
        let y = TensorDesc::contiguous(DType::F16, &[7, 96]);
        let g = plan(Op::MatMul { bias: false }, &[x, w], &y);
        assert_eq!((g.m, g.n, g.k), (96, 7, 64));
        assert_eq!((g.a.tensor, g.a.transpose, g.a.ld), (1, true, 64));
        assert_eq!((g.b.tensor, g.b.transpose, g.b.ld), (0, false, 64));
        assert_eq!((g.c.tensor, g.c.ld, g.beta), (2, 96, 0.0));
    }

    #[test]
    fn quantized_mixed_and_unit_stride_free_views_stay_on_kernels() {
        let x = TensorDesc::contiguous(DType::F32, &[2, 64]);
        let y = TensorDesc::contiguous(DType::F32, &[2, 32]);
        let q = TensorDesc::contiguous(DType::Q8_0, &[32, 64]);
        assert!(plan_gemm(&Op::MatMul { bias: false }, &[x.clone(), q], &y).is_none());
        let h = TensorDesc::contiguous(DType::F16, &[32, 64]);
        assert!(plan_gemm(&Op::MatMul { bias: false }, &[x.clone(), h], &y).is_none());
        let every_other = TensorDesc::strided(DType::F32, &[32, 64], &[256, 2], 0);
        assert!(plan_gemm(&Op::MatMul { bias: false }, &[x, every_other], &y).is_none());
    }

    #[test]
    fn bias_is_filled_into_the_output_then_accumulated() {
        let x = TensorDesc::contiguous(DType::F32, &[3, 8]);
        let w = TensorDesc::contiguous(DType::F32, &[5, 8]);
        let b = TensorDesc::contiguous(DType::F32, &[5]);
        let y = TensorDesc::contiguous(DType::F32, &[3, 5]);
        let g = plan(Op::MatMul { bias: true }, &[x, w, b], &y);
        assert_eq!(g.beta, 1.0);
        let fill = g.bias_fill.unwrap_or_else(|| panic!("a bias fill"));
        assert_eq!(
            (&fill.shape[..], &fill.strides[..]),
            (&[3, 5][..], &[0, 1][..])
        );
        assert_eq!(g.c.tensor, 3);
    }

    #[test]
    fn a_missing_library_names_itself_and_the_variable_that_points_to_it() {
        let err = open_library(
            None,
            "GLMHAL_TEST_NO_SUCH_BLAS",
            &[],
            &["libglmhal-no-such-blas.so.9"],
        )
        .err()
        .unwrap_or_default();
        assert!(err.contains("libglmhal-no-such-blas.so.9"), "{err}");
        assert!(err.contains("GLMHAL_TEST_NO_SUCH_BLAS"), "{err}");
        assert!(gemm_feature(Err(&err), true).starts_with("gemm=kernels ("));
        assert!(gemm_feature(Ok("libcublas.so.12"), false).contains("turned off"));
    }
}
