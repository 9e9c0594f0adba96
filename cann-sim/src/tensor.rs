//! aclTensor and aclScalar: views into device memory, checked on creation.

use std::ffi::c_void;

use glmhal_hal::{quant, DType};

use crate::state::{code, lock, State};

/// Element types the simulator knows (aclDataType values in [`dtype`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    Bf16,
    I32,
    I64,
    I8,
    U8,
    Bool,
}

impl Elem {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::Bf16 => 2,
            Elem::I64 => 8,
            Elem::I8 | Elem::U8 | Elem::Bool => 1,
        }
    }

    fn float(self) -> Option<DType> {
        match self {
            Elem::F32 => Some(DType::F32),
            Elem::F16 => Some(DType::F16),
            Elem::Bf16 => Some(DType::Bf16),
            _ => None,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        self.float().is_some()
    }
}

impl std::fmt::Display for Elem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", format!("{self:?}").to_lowercase())
    }
}

/// aclDataType values the simulator knows.
pub fn dtype(acl: i32) -> Option<Elem> {
    match acl {
        0 => Some(Elem::F32),
        1 => Some(Elem::F16),
        2 => Some(Elem::I8),
        3 => Some(Elem::I32),
        4 => Some(Elem::U8),
        9 => Some(Elem::I64),
        12 => Some(Elem::Bool),
        27 => Some(Elem::Bf16),
        _ => None,
    }
}

/// A tensor as created by `aclCreateTensor`.
#[derive(Clone, Debug)]
pub struct SimTensor {
    pub dims: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
    pub dtype: Elem,
    pub acl_dtype: i32,
    pub data: usize,
    pub storage_elems: usize,
}

impl SimTensor {
    /// Elements in the view.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    /// Element index (from `data`) of logical row-major index `i`, read as `shape` (broadcast).
    pub fn element(&self, i: usize, shape: &[usize]) -> usize {
        let lead = shape.len() - self.dims.len();
        let mut rest = i;
        let mut at = self.offset;
        for d in (0..shape.len()).rev() {
            let idx = rest % shape[d];
            rest /= shape[d];
            if d >= lead && self.dims[d - lead] != 1 {
                at += idx * self.strides[d - lead];
            }
        }
        at
    }

    fn bytes(&self) -> &'static mut [u8] {
        let len = self.dtype.size() * self.storage_elems;
        // SAFETY: creation checked that `data..data+len` lies inside a live allocation.
        unsafe { std::slice::from_raw_parts_mut(self.data as *mut u8, len) }
    }

    /// Every value of the view read as `shape` (broadcast), in row-major
    /// order, each through `f` (the cube unit's rounding, say).
    pub fn values(&self, shape: &[usize], f: impl Fn(f64) -> f64) -> Vec<f64> {
        (0..shape.iter().product::<usize>())
            .map(|i| f(self.read(self.element(i, shape))))
            .collect()
    }

    /// Value at element index `e`.
    pub fn read(&self, e: usize) -> f64 {
        let b = self.bytes();
        let at = |n: usize| &b[e * n..e * n + n];
        match self.dtype {
            Elem::I64 => i64::from_le_bytes(at(8).try_into().unwrap_or([0; 8])) as f64,
            Elem::I8 => at(1)[0] as i8 as f64,
            Elem::U8 => at(1)[0] as f64,
            Elem::Bool => f64::from(u8::from(at(1)[0] != 0)),
            Elem::I32 => quant::read_scalar(DType::I32, b, e) as f64,
            float => quant::read_scalar(float.float().unwrap_or(DType::F32), b, e) as f64,
        }
    }

    /// Stores `v` (rounded to the dtype; integers round half away from zero
    /// and saturate) at element index `e`.
    pub fn write(&self, e: usize, v: f64) {
        let b = self.bytes();
        match self.dtype {
            Elem::I64 => b[e * 8..e * 8 + 8].copy_from_slice(&(v.round() as i64).to_le_bytes()),
            Elem::I8 => b[e] = v.round().clamp(-128.0, 127.0) as i8 as u8,
            Elem::U8 => b[e] = v.round().clamp(0.0, 255.0) as u8,
            Elem::Bool => b[e] = u8::from(v != 0.0),
            Elem::I32 => quant::write_scalar(DType::I32, b, e, v as f32),
            float => quant::write_scalar(float.float().unwrap_or(DType::F32), b, e, v as f32),
        }
    }
}

/// A scalar as created by `aclCreateScalar`.
#[derive(Clone, Copy, Debug)]
pub struct SimScalar {
    pub value: f64,
}

/// The tensor behind `t`, if it is live.
pub fn get(s: &mut State, call: &str, name: &str, t: *const c_void) -> Result<SimTensor, i32> {
    if !s.tensors.contains(&(t as usize)) {
        return Err(s.violation(
            call,
            format!("{name} {t:?} is not a live aclTensor"),
            code::INVALID_PARAM,
        ));
    }
    // SAFETY: live tensors are boxes this library created.
    let tensor = unsafe { &*(t as *const SimTensor) }.clone();
    if s.fetch_call != call {
        // A first phase that ended without an executor left its own.
        s.fetched.clear();
        s.fetched_elems = 0;
        s.fetch_call = call.to_string();
    }
    s.fetched
        .push((tensor.data, tensor.dtype.size() * tensor.storage_elems));
    s.fetched_elems = s.fetched_elems.max(tensor.numel());
    let soc = crate::soc::Soc::current();
    if tensor.dtype == Elem::Bf16 && !soc.has_bf16() {
        return Err(s.violation(
            call,
            format!(
                "{name} is DT_BFLOAT16, which the {} does not support",
                soc.product()
            ),
            code::INVALID_PARAM,
        ));
    }
    Ok(tensor)
}

/// The scalar behind `p`, if it is live.
pub fn get_scalar(s: &mut State, call: &str, p: *const c_void) -> Result<SimScalar, i32> {
    if !s.scalars.contains(&(p as usize)) {
        return Err(s.violation(
            call,
            format!("{p:?} is not a live aclScalar"),
            code::INVALID_PARAM,
        ));
    }
    // SAFETY: live scalars are boxes this library created.
    Ok(*unsafe { &*(p as *const SimScalar) })
}

/// ACL's `aclCreateTensor`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclCreateTensor(
    view_dims: *const i64,
    view_n: u64,
    data_type: i32,
    strides: *const i64,
    offset: i64,
    format: i32,
    storage_dims: *const i64,
    storage_n: u64,
    data: *mut c_void,
) -> *mut c_void {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return std::ptr::null_mut();
    };
    let call = "aclCreateTensor";
    let fail = |s: &mut State, what: String| {
        s.violation(call, what, code::INVALID_PARAM);
        std::ptr::null_mut()
    };
    if s.ready(call).is_err() {
        return std::ptr::null_mut();
    }
    let Some(dt) = dtype(data_type) else {
        return fail(
            s,
            format!("dataType {data_type} is not a dtype of this data"),
        );
    };
    if format != 2 {
        return fail(s, format!("format {format}, expected ACL_FORMAT_ND (2)"));
    }
    if view_n > 8
        || (view_n > 0 && (view_dims.is_null() || strides.is_null()))
        || storage_dims.is_null()
        || storage_n == 0
    {
        return fail(s, format!("viewDims/strides/storageDims pointers or counts are invalid (viewDimsNum {view_n}, storageDimsNum {storage_n})"));
    }
    // SAFETY: non-null and sized by the counts the caller passed.
    let (dims, st, sdims) = unsafe {
        (
            std::slice::from_raw_parts(view_dims, view_n as usize),
            std::slice::from_raw_parts(strides, view_n as usize),
            std::slice::from_raw_parts(storage_dims, storage_n as usize),
        )
    };
    if dims.iter().chain(st).chain(sdims).any(|v| *v < 0) || offset < 0 {
        return fail(
            s,
            format!("negative dims {dims:?}, strides {st:?}, storage {sdims:?} or offset {offset}"),
        );
    }
    let storage_elems: usize = sdims.iter().map(|d| *d as usize).product();
    let bytes = dt.size() * storage_elems;
    if s.region(data as usize, bytes).is_none() {
        return fail(s, format!("storage of {storage_elems} {dt} elements ({bytes} bytes) at {data:?} is not inside one device allocation"));
    }
    let t = SimTensor {
        dims: dims.iter().map(|d| *d as usize).collect(),
        strides: st.iter().map(|d| *d as usize).collect(),
        offset: offset as usize,
        dtype: dt,
        acl_dtype: data_type,
        data: data as usize,
        storage_elems,
    };
    let last = t.offset
        + t.dims
            .iter()
            .zip(&t.strides)
            .map(|(d, s)| d.saturating_sub(1) * s)
            .sum::<usize>();
    if t.numel() > 0 && last >= storage_elems {
        return fail(s, format!("the view (dims {:?}, strides {:?} elements, offset {} elements) reaches element {last}, beyond the {storage_elems}-element storage", t.dims, t.strides, t.offset));
    }
    let p = Box::into_raw(Box::new(t)) as usize;
    s.tensors.insert(p);
    p as *mut c_void
}

/// ACL's `aclDestroyTensor`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclDestroyTensor(t: *const c_void) -> i32 {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    if !s.tensors.remove(&(t as usize)) {
        return s.violation(
            "aclDestroyTensor",
            format!("{t:?} is not a live aclTensor"),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: the box was created by aclCreateTensor and is dropped once.
    drop(unsafe { Box::from_raw(t as *mut SimTensor) });
    code::SUCCESS
}

/// ACL's `aclCreateScalar`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclCreateScalar(value: *mut c_void, data_type: i32) -> *mut c_void {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return std::ptr::null_mut();
    };
    if value.is_null() {
        s.violation(
            "aclCreateScalar",
            "value is NULL".into(),
            code::INVALID_PARAM,
        );
        return std::ptr::null_mut();
    }
    // SAFETY: non-null; the dtype says how many bytes it holds.
    let v = unsafe {
        match data_type {
            0 => *(value as *const f32) as f64,
            3 => *(value as *const i32) as f64,
            11 => *(value as *const f64),
            other => {
                s.violation(
                    "aclCreateScalar",
                    format!("dataType {other} is not supported for scalars"),
                    code::INVALID_PARAM,
                );
                return std::ptr::null_mut();
            }
        }
    };
    let p = Box::into_raw(Box::new(SimScalar { value: v })) as usize;
    s.scalars.insert(p);
    p as *mut c_void
}

/// ACL's `aclDestroyScalar`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclDestroyScalar(p: *const c_void) -> i32 {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    if !s.scalars.remove(&(p as usize)) {
        return s.violation(
            "aclDestroyScalar",
            format!("{p:?} is not a live aclScalar"),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: created by aclCreateScalar, dropped once.
    drop(unsafe { Box::from_raw(p as *mut SimScalar) });
    code::SUCCESS
}

/// An integer list as created by `aclCreateIntArray`.
#[derive(Clone, Debug)]
pub struct SimIntArray {
    pub values: Vec<i64>,
}

/// ACL's `aclCreateIntArray`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclCreateIntArray(values: *const i64, size: u64) -> *mut c_void {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return std::ptr::null_mut();
    };
    if (values.is_null() && size > 0) || size > 64 {
        s.violation(
            "aclCreateIntArray",
            format!("value {values:?} with size {size}"),
            code::INVALID_PARAM,
        );
        return std::ptr::null_mut();
    }
    let values = if size == 0 {
        Vec::new()
    } else {
        // SAFETY: non-null with `size` elements, as the caller promises.
        unsafe { std::slice::from_raw_parts(values, size as usize) }.to_vec()
    };
    let p = Box::into_raw(Box::new(SimIntArray { values })) as usize;
    s.int_arrays.insert(p);
    p as *mut c_void
}

/// ACL's `aclDestroyIntArray`, with the simulator's checks.
#[no_mangle]
pub unsafe extern "C" fn aclDestroyIntArray(p: *const c_void) -> i32 {
    let mut guard = lock();
    let Some(s) = guard.as_mut() else {
        return code::UNINITIALIZED;
    };
    if !s.int_arrays.remove(&(p as usize)) {
        return s.violation(
            "aclDestroyIntArray",
            format!("{p:?} is not a live aclIntArray"),
            code::INVALID_PARAM,
        );
    }
    // SAFETY: created by aclCreateIntArray, dropped once.
    drop(unsafe { Box::from_raw(p as *mut SimIntArray) });
    code::SUCCESS
}

/// The int array behind `p`, if it is live.
pub fn get_int_array(s: &mut State, call: &str, p: *const c_void) -> Result<SimIntArray, i32> {
    if !s.int_arrays.contains(&(p as usize)) {
        return Err(s.violation(
            call,
            format!("{p:?} is not a live aclIntArray"),
            code::INVALID_PARAM,
        ));
    }
    // SAFETY: live int arrays are boxes this library created.
    Ok(unsafe { &*(p as *const SimIntArray) }.clone())
}
