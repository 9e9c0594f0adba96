//! The ACL runtime (`libascendcl.so`), tensor (`libnnopbase.so`) and op
//! (`libopapi.so`) symbol tables, loaded at run time from the CANN toolkit.
//! Declarations follow the documented C API; no header is vendored.
//!
//! Sources the signatures, enum values and per-SoC limits were checked
//! against (the per-SoC table is in docs/PORTING-CANN.md):
//! - runtime (`aclInit`/`aclFinalize` once per process, `aclrtSetDevice`
//!   binding a context to the calling thread, streams, memory, copies, error
//!   codes such as 107002 ACL_ERROR_RT_CONTEXT_NULL): the CANN application
//!   development guide, runtime API reference (canncommercial 7.0–8.x);
//! - aclnn matmuls (`cubeMathType` 0 KEEP_DTYPE, 1 ALLOW_FP32_DOWN_PRECISION,
//!   2 USE_FP16, 3 USE_HF32): the aclnnMm, aclnnMatmul and aclnnBatchMatMul
//!   pages and ops-nn `matmul/mat_mul_v3/docs/aclnnMm.md`;
//! - `aclnnWeightQuantBatchMatmulV2` (weight `[K, N]` possibly a transposed
//!   view, scales `[ceil(K/group), N]` or `[N]`, group 0 or a multiple of 32
//!   in [32, K−1], K and N at most 65535): ops-nn
//!   `weight_quant_batch_matmul_v2/docs`, and llama.cpp's
//!   `ggml-cann/aclnn_ops.cpp` (the N split and group 0 for K ≤ 32);
//! - `aclnnRotaryPositionEmbedding` (modes 0 half and 1 interleave, 4-D,
//!   cos/sin of x's dtype): ops-transformer
//!   `posembedding/rotary_position_embedding/docs`;
//! - aclDataType values (0 float, 1 float16, 2 int8, 3 int32, 4 uint8,
//!   9 int64, 12 bool, 27 bfloat16) and ACL_FORMAT_ND (2): the aclnn common
//!   API reference; every other aclnn op: its CANN 8.0 API page.

use std::ffi::{c_char, c_void, CStr};
use std::path::{Path, PathBuf};

use glmhal_hal::{HalError, Result};
use libloading::Library;

/// ACL_SUCCESS.
pub const SUCCESS: i32 = 0;
/// aclrtMemcpyKind values.
pub const HOST_TO_DEVICE: i32 = 1;
/// aclrtMemcpyKind values.
pub const DEVICE_TO_HOST: i32 = 2;
/// aclFormat ACL_FORMAT_ND.
pub const FORMAT_ND: i32 = 2;
/// aclrtMemMallocPolicy ACL_MEM_MALLOC_HUGE_FIRST.
pub const MALLOC_HUGE_FIRST: i32 = 0;
/// aclDataType ACL_FLOAT, for scalars.
pub const ACL_FLOAT: i32 = 0;
/// aclDataType ACL_FLOAT16 (block scales).
pub const ACL_FLOAT16: i32 = 1;
/// aclDataType ACL_INT8 (Q8_0 values).
pub const ACL_INT8: i32 = 2;
/// aclDataType ACL_UINT8 (Q4_0 pairs, raw row bytes).
pub const ACL_UINT8: i32 = 4;
/// aclDataType ACL_INT64 (aclnnArgMax's output).
pub const ACL_INT64: i32 = 9;
/// aclDataType ACL_BOOL (masks).
pub const ACL_BOOL: i32 = 12;

/// `aclnnXxx(workspace, size, executor, stream)`, the second phase of every op.
pub type RunFn = unsafe extern "C" fn(*mut c_void, u64, *mut c_void, *mut c_void) -> i32;

/// `aclnnXxxGetWorkspaceSize(self, out, ...)` of one-input elementwise ops.
pub type UnaryWsFn =
    unsafe extern "C" fn(*const c_void, *const c_void, *mut u64, *mut *mut c_void) -> i32;

/// `aclnnXxxGetWorkspaceSize(self, scalar, out, ...)` of tensor-scalar ops.
pub type ScalarWsFn = unsafe extern "C" fn(
    *const c_void,
    *const c_void,
    *const c_void,
    *mut u64,
    *mut *mut c_void,
) -> i32;

/// Every entry point used, bound once.
#[allow(missing_docs)] // each field is the C function of the same name
pub struct Acl {
    _libs: Vec<Library>,
    pub root: PathBuf,
    pub init: unsafe extern "C" fn(*const c_char) -> i32,
    pub finalize: unsafe extern "C" fn() -> i32,
    pub recent_error: unsafe extern "C" fn() -> *const c_char,
    pub device_count: unsafe extern "C" fn(*mut u32) -> i32,
    pub set_device: unsafe extern "C" fn(i32) -> i32,
    pub soc_name: unsafe extern "C" fn() -> *const c_char,
    pub mem_info: unsafe extern "C" fn(i32, *mut usize, *mut usize) -> i32,
    pub create_stream: unsafe extern "C" fn(*mut *mut c_void) -> i32,
    pub sync_stream: unsafe extern "C" fn(*mut c_void) -> i32,
    pub destroy_stream: unsafe extern "C" fn(*mut c_void) -> i32,
    pub malloc: unsafe extern "C" fn(*mut *mut c_void, usize, i32) -> i32,
    pub free: unsafe extern "C" fn(*mut c_void) -> i32,
    pub memcpy: unsafe extern "C" fn(*mut c_void, usize, *const c_void, usize, i32) -> i32,
    pub create_tensor: unsafe extern "C" fn(
        *const i64,
        u64,
        i32,
        *const i64,
        i64,
        i32,
        *const i64,
        u64,
        *mut c_void,
    ) -> *mut c_void,
    pub destroy_tensor: unsafe extern "C" fn(*const c_void) -> i32,
    pub create_scalar: unsafe extern "C" fn(*mut c_void, i32) -> *mut c_void,
    pub destroy_scalar: unsafe extern "C" fn(*const c_void) -> i32,
    pub add_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub add: RunFn,
    pub mul_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub mul: RunFn,
    pub muls_ws: ScalarWsFn,
    pub muls: RunFn,
    pub silu_ws: UnaryWsFn,
    pub silu: RunFn,
    pub cast_ws:
        unsafe extern "C" fn(*const c_void, i32, *const c_void, *mut u64, *mut *mut c_void) -> i32,
    pub cast: RunFn,
    pub mm_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        i8,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub mm: RunFn,
    pub softmax_ws:
        unsafe extern "C" fn(*const c_void, i64, *const c_void, *mut u64, *mut *mut c_void) -> i32,
    pub softmax: RunFn,
    pub rms_norm_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        f64,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub rms_norm: RunFn,
    pub index_select_ws: unsafe extern "C" fn(
        *const c_void,
        i64,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub index_select: RunFn,
    pub batch_matmul_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        i8,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub batch_matmul: RunFn,
    pub swiglu_ws:
        unsafe extern "C" fn(*const c_void, i64, *const c_void, *mut u64, *mut *mut c_void) -> i32,
    pub swiglu: RunFn,
    pub gelu_ws:
        unsafe extern "C" fn(*const c_void, i64, *const c_void, *mut u64, *mut *mut c_void) -> i32,
    pub gelu: RunFn,
    pub index_copy_ws: unsafe extern "C" fn(
        *const c_void,
        i64,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub index_copy: RunFn,
    pub create_int_array: unsafe extern "C" fn(*const i64, u64) -> *mut c_void,
    pub destroy_int_array: unsafe extern "C" fn(*const c_void) -> i32,
    pub cos_ws: UnaryWsFn,
    pub cos: RunFn,
    pub sin_ws: UnaryWsFn,
    pub sin: RunFn,
    pub rope_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        i64,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub rope: RunFn,
    /// `aclnnInplaceCopyGetWorkspaceSize(selfRef, src, ...)`.
    pub copy_ws: UnaryWsFn,
    pub copy: RunFn,
    pub matmul_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        i8,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub matmul: RunFn,
    pub masked_fill_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub masked_fill: RunFn,
    pub argmax_ws: unsafe extern "C" fn(
        *const c_void,
        i64,
        bool,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub argmax: RunFn,
    pub layer_norm_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        f64,
        *const c_void,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub layer_norm: RunFn,
    pub adds_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub adds: RunFn,
    /// `aclnnRemainderTensorScalarGetWorkspaceSize(self, other, out, ...)`.
    pub remainder_ws: ScalarWsFn,
    pub remainder: RunFn,
    /// `aclnnFloorDividesGetWorkspaceSize(self, other, out, ...)`.
    pub floor_divide_ws: ScalarWsFn,
    pub floor_divide: RunFn,
    pub weight_quant_mm_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        i32,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub weight_quant_mm: RunFn,
    pub abs_ws: UnaryWsFn,
    pub abs: RunFn,
    pub sign_ws: UnaryWsFn,
    pub sign: RunFn,
    pub floor_ws: UnaryWsFn,
    pub floor: RunFn,
    pub reciprocal_ws: UnaryWsFn,
    pub reciprocal: RunFn,
    pub divs_ws: ScalarWsFn,
    pub divs: RunFn,
    pub eq_scalar_ws: ScalarWsFn,
    pub eq_scalar: RunFn,
    pub clamp_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub clamp: RunFn,
    pub amax_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        bool,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub amax: RunFn,
    pub gather_ws: unsafe extern "C" fn(
        *const c_void,
        i64,
        *const c_void,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub gather: RunFn,
    pub rsqrt_ws: UnaryWsFn,
    pub rsqrt: RunFn,
    pub reduce_sum_ws: unsafe extern "C" fn(
        *const c_void,
        *const c_void,
        bool,
        i32,
        *const c_void,
        *mut u64,
        *mut *mut c_void,
    ) -> i32,
    pub reduce_sum: RunFn,
}

/// Toolkit roots tried: `ASCEND_TOOLKIT_HOME`, `ASCEND_HOME_PATH`, then the
/// default install.
pub fn roots() -> Vec<PathBuf> {
    // Environment: CANN's own variables (set by its `set_env.sh`), read as
    // CANN's tools read them; glmhal's settings come as `BackendOptions`.
    let mut r: Vec<PathBuf> = ["ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(PathBuf::from)
        .collect();
    r.push(PathBuf::from("/usr/local/Ascend/ascend-toolkit/latest"));
    r
}

/// The first toolkit root of [`roots`] that has `lib64/libascendcl.so`.
fn toolkit_root() -> Result<PathBuf> {
    let roots = roots();
    roots
        .iter()
        .find(|r| r.join("lib64/libascendcl.so").exists())
        .cloned()
        .ok_or_else(|| HalError::Unavailable {
            backend: "cann".into(),
            reason: format!(
                "the CANN toolkit was not found: no lib64/libascendcl.so under {} (set ASCEND_TOOLKIT_HOME)",
                roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        })
}

/// Loads `lib64/<name>` under the toolkit `root`.
fn open_library(root: &Path, name: &str) -> Result<Library> {
    let path = root.join("lib64").join(name);
    // SAFETY: loading a vendor library runs its initializers, which have no preconditions.
    unsafe { Library::new(&path) }.map_err(|e| HalError::Unavailable {
        backend: "cann".into(),
        reason: format!("loading {}: {e}", path.display()),
    })
}

/// The symbol `name` of `lib` as a `T` (a function pointer type).
fn sym<T: Copy>(lib: &Library, name: &str) -> Result<T> {
    // SAFETY: each symbol is declared with the documented C signature.
    unsafe { lib.get::<T>(name.as_bytes()) }
        .map(|s| *s)
        .map_err(|e| HalError::Unavailable {
            backend: "cann".into(),
            reason: format!("{name} is missing: {e}"),
        })
}

impl Acl {
    /// Loads the three libraries from the first toolkit root that has them.
    pub fn load() -> Result<Self> {
        let root = toolkit_root()?;
        let open = |name: &str| open_library(&root, name);
        // nnopbase before opapi, which depends on it.
        let (acl, nnop, opapi) = (
            open("libascendcl.so")?,
            open("libnnopbase.so")?,
            open("libopapi.so")?,
        );
        Self::bind(root, acl, nnop, opapi)
    }

    /// Binds every entry point from the three loaded libraries, one at a
    /// time in the order listed: the first one missing is reported.
    fn bind(root: PathBuf, acl: Library, nnop: Library, opapi: Library) -> Result<Self> {
        Ok(Acl {
            init: sym(&acl, "aclInit")?,
            finalize: sym(&acl, "aclFinalize")?,
            recent_error: sym(&acl, "aclGetRecentErrMsg")?,
            device_count: sym(&acl, "aclrtGetDeviceCount")?,
            set_device: sym(&acl, "aclrtSetDevice")?,
            soc_name: sym(&acl, "aclrtGetSocName")?,
            mem_info: sym(&acl, "aclrtGetMemInfo")?,
            create_stream: sym(&acl, "aclrtCreateStream")?,
            sync_stream: sym(&acl, "aclrtSynchronizeStream")?,
            destroy_stream: sym(&acl, "aclrtDestroyStream")?,
            malloc: sym(&acl, "aclrtMalloc")?,
            free: sym(&acl, "aclrtFree")?,
            memcpy: sym(&acl, "aclrtMemcpy")?,
            create_tensor: sym(&nnop, "aclCreateTensor")?,
            destroy_tensor: sym(&nnop, "aclDestroyTensor")?,
            create_scalar: sym(&nnop, "aclCreateScalar")?,
            destroy_scalar: sym(&nnop, "aclDestroyScalar")?,
            add_ws: sym(&opapi, "aclnnAddGetWorkspaceSize")?,
            add: sym(&opapi, "aclnnAdd")?,
            mul_ws: sym(&opapi, "aclnnMulGetWorkspaceSize")?,
            mul: sym(&opapi, "aclnnMul")?,
            muls_ws: sym(&opapi, "aclnnMulsGetWorkspaceSize")?,
            muls: sym(&opapi, "aclnnMuls")?,
            silu_ws: sym(&opapi, "aclnnSiluGetWorkspaceSize")?,
            silu: sym(&opapi, "aclnnSilu")?,
            cast_ws: sym(&opapi, "aclnnCastGetWorkspaceSize")?,
            cast: sym(&opapi, "aclnnCast")?,
            mm_ws: sym(&opapi, "aclnnMmGetWorkspaceSize")?,
            mm: sym(&opapi, "aclnnMm")?,
            softmax_ws: sym(&opapi, "aclnnSoftmaxGetWorkspaceSize")?,
            softmax: sym(&opapi, "aclnnSoftmax")?,
            rms_norm_ws: sym(&opapi, "aclnnRmsNormGetWorkspaceSize")?,
            rms_norm: sym(&opapi, "aclnnRmsNorm")?,
            index_select_ws: sym(&opapi, "aclnnIndexSelectGetWorkspaceSize")?,
            index_select: sym(&opapi, "aclnnIndexSelect")?,
            batch_matmul_ws: sym(&opapi, "aclnnBatchMatMulGetWorkspaceSize")?,
            batch_matmul: sym(&opapi, "aclnnBatchMatMul")?,
            swiglu_ws: sym(&opapi, "aclnnSwiGluGetWorkspaceSize")?,
            swiglu: sym(&opapi, "aclnnSwiGlu")?,
            gelu_ws: sym(&opapi, "aclnnGeluV2GetWorkspaceSize")?,
            gelu: sym(&opapi, "aclnnGeluV2")?,
            index_copy_ws: sym(&opapi, "aclnnInplaceIndexCopyGetWorkspaceSize")?,
            index_copy: sym(&opapi, "aclnnInplaceIndexCopy")?,
            create_int_array: sym(&nnop, "aclCreateIntArray")?,
            destroy_int_array: sym(&nnop, "aclDestroyIntArray")?,
            cos_ws: sym(&opapi, "aclnnCosGetWorkspaceSize")?,
            cos: sym(&opapi, "aclnnCos")?,
            sin_ws: sym(&opapi, "aclnnSinGetWorkspaceSize")?,
            sin: sym(&opapi, "aclnnSin")?,
            rope_ws: sym(&opapi, "aclnnRotaryPositionEmbeddingGetWorkspaceSize")?,
            rope: sym(&opapi, "aclnnRotaryPositionEmbedding")?,
            copy_ws: sym(&opapi, "aclnnInplaceCopyGetWorkspaceSize")?,
            copy: sym(&opapi, "aclnnInplaceCopy")?,
            matmul_ws: sym(&opapi, "aclnnMatmulGetWorkspaceSize")?,
            matmul: sym(&opapi, "aclnnMatmul")?,
            masked_fill_ws: sym(&opapi, "aclnnInplaceMaskedFillScalarGetWorkspaceSize")?,
            masked_fill: sym(&opapi, "aclnnInplaceMaskedFillScalar")?,
            argmax_ws: sym(&opapi, "aclnnArgMaxGetWorkspaceSize")?,
            argmax: sym(&opapi, "aclnnArgMax")?,
            layer_norm_ws: sym(&opapi, "aclnnLayerNormGetWorkspaceSize")?,
            layer_norm: sym(&opapi, "aclnnLayerNorm")?,
            adds_ws: sym(&opapi, "aclnnAddsGetWorkspaceSize")?,
            adds: sym(&opapi, "aclnnAdds")?,
            remainder_ws: sym(&opapi, "aclnnRemainderTensorScalarGetWorkspaceSize")?,
            remainder: sym(&opapi, "aclnnRemainderTensorScalar")?,
            floor_divide_ws: sym(&opapi, "aclnnFloorDividesGetWorkspaceSize")?,
            floor_divide: sym(&opapi, "aclnnFloorDivides")?,
            weight_quant_mm_ws: sym(&opapi, "aclnnWeightQuantBatchMatmulV2GetWorkspaceSize")?,
            weight_quant_mm: sym(&opapi, "aclnnWeightQuantBatchMatmulV2")?,
            abs_ws: sym(&opapi, "aclnnAbsGetWorkspaceSize")?,
            abs: sym(&opapi, "aclnnAbs")?,
            sign_ws: sym(&opapi, "aclnnSignGetWorkspaceSize")?,
            sign: sym(&opapi, "aclnnSign")?,
            floor_ws: sym(&opapi, "aclnnFloorGetWorkspaceSize")?,
            floor: sym(&opapi, "aclnnFloor")?,
            reciprocal_ws: sym(&opapi, "aclnnReciprocalGetWorkspaceSize")?,
            reciprocal: sym(&opapi, "aclnnReciprocal")?,
            divs_ws: sym(&opapi, "aclnnDivsGetWorkspaceSize")?,
            divs: sym(&opapi, "aclnnDivs")?,
            eq_scalar_ws: sym(&opapi, "aclnnEqScalarGetWorkspaceSize")?,
            eq_scalar: sym(&opapi, "aclnnEqScalar")?,
            clamp_ws: sym(&opapi, "aclnnClampGetWorkspaceSize")?,
            clamp: sym(&opapi, "aclnnClamp")?,
            amax_ws: sym(&opapi, "aclnnAmaxGetWorkspaceSize")?,
            amax: sym(&opapi, "aclnnAmax")?,
            gather_ws: sym(&opapi, "aclnnGatherGetWorkspaceSize")?,
            gather: sym(&opapi, "aclnnGather")?,
            rsqrt_ws: sym(&opapi, "aclnnRsqrtGetWorkspaceSize")?,
            rsqrt: sym(&opapi, "aclnnRsqrt")?,
            reduce_sum_ws: sym(&opapi, "aclnnReduceSumGetWorkspaceSize")?,
            reduce_sum: sym(&opapi, "aclnnReduceSum")?,
            root,
            _libs: vec![acl, nnop, opapi],
        })
    }

    /// `Err` with `aclGetRecentErrMsg()` text unless `code` is success.
    pub fn check(&self, what: &str, code: i32) -> Result<()> {
        if code == SUCCESS {
            return Ok(());
        }
        // SAFETY: returns NULL or a NUL-terminated string owned by ACL.
        let p = unsafe { (self.recent_error)() };
        let text = if p.is_null() {
            String::new()
        } else {
            // SAFETY: non-null, NUL-terminated.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        };
        Err(HalError::backend(
            "cann",
            what,
            format!("ACL error {code}: {text}"),
        ))
    }

    /// The SoC name (`Ascend910B3`, `Ascend310P3`, ...).
    pub fn soc(&self) -> String {
        // SAFETY: returns NULL or a static NUL-terminated string.
        let p = unsafe { (self.soc_name)() };
        if p.is_null() {
            return "unknown Ascend SoC".into();
        }
        // SAFETY: non-null, NUL-terminated.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}
