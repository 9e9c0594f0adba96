//! GGUF files (llama.cpp's format, versions 2 and 3): a memory-mapped reader
//! that checks every field before it trusts it, and the metadata and tensor
//! tables it describes.
//!
//! Layout (little-endian): magic `GGUF`, u32 version, u64 tensor count, u64
//! metadata count; the metadata (`key: string, type: u32, value`); the tensor
//! infos (`name, u32 n_dims, u64 dims[n_dims]` innermost first, `u32 type,
//! u64 offset`); padding to `general.alignment` (32 by default); the data,
//! each tensor at its offset from the data start.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use glmhal_hal::{DType, HalError, Result};
use memmap2::Mmap;

use crate::safetensors::TensorData;

/// `GGUF` read as a little-endian u32.
pub const MAGIC: u32 = 0x4655_4747;
/// Default alignment of the data section and of every tensor in it.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// The longest string accepted (keys, names, tokens, templates).
const MAX_STRING: u64 = 1 << 24;
/// The most dims a tensor may have.
const MAX_DIMS: u32 = 4;
/// Nesting of arrays in metadata (arrays of arrays are legal, deeply nested ones are not sane).
const MAX_ARRAY_DEPTH: usize = 2;

/// GGUF tensor types glmhal knows by name (ggml's `ggml_type` numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
    /// 32 values: f16 scale, 16 bytes of 4-bit pairs.
    Q4_0,
    /// 32 values: f16 scale, 32 int8.
    Q8_0,
    /// 256 values in 8 sub-blocks with 6-bit scales and mins, 4-bit values.
    Q4K,
    /// As Q4_K with a fifth bit per value.
    Q5K,
    /// 256 values in 16 sub-blocks with int8 scales, 6-bit values.
    Q6K,
    /// Any other ggml type, kept for the error message.
    Other(u32),
}

impl GgmlType {
    /// From ggml's number.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::Bf16,
            other => GgmlType::Other(other),
        }
    }

    /// ggml's number.
    pub fn code(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4K => 12,
            GgmlType::Q5K => 13,
            GgmlType::Q6K => 14,
            GgmlType::Bf16 => 30,
            GgmlType::Other(c) => c,
        }
    }

    /// ggml's name.
    pub fn name(self) -> String {
        match self {
            GgmlType::F32 => "F32".into(),
            GgmlType::F16 => "F16".into(),
            GgmlType::Bf16 => "BF16".into(),
            GgmlType::Q4_0 => "Q4_0".into(),
            GgmlType::Q8_0 => "Q8_0".into(),
            GgmlType::Q4K => "Q4_K".into(),
            GgmlType::Q5K => "Q5_K".into(),
            GgmlType::Q6K => "Q6_K".into(),
            GgmlType::Other(c) => match c {
                3 => "Q4_1".into(),
                6 => "Q5_0".into(),
                7 => "Q5_1".into(),
                9 => "Q8_1".into(),
                10 => "Q2_K".into(),
                11 => "Q3_K".into(),
                15 => "Q8_K".into(),
                24 => "I8".into(),
                25 => "I16".into(),
                26 => "I32".into(),
                27 => "I64".into(),
                28 => "F64".into(),
                _ => format!("ggml type {c}"),
            },
        }
    }

    /// `(values per block, bytes per block)`, for every type whose size is known.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::Bf16 => Some((1, 2)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Q4K => Some((256, 144)),
            GgmlType::Q5K => Some((256, 176)),
            GgmlType::Q6K => Some((256, 210)),
            GgmlType::Other(c) => match c {
                3 => Some((32, 20)),
                6 => Some((32, 22)),
                7 => Some((32, 24)),
                9 => Some((32, 36)),
                10 => Some((256, 84)),
                11 => Some((256, 110)),
                15 => Some((256, 292)),
                24 => Some((1, 1)),
                25 => Some((1, 2)),
                26 => Some((1, 4)),
                27 | 28 => Some((1, 8)),
                _ => None,
            },
        }
    }

    /// The glmhal dtype this type is used as without conversion.
    pub fn dtype(self) -> Option<DType> {
        match self {
            GgmlType::F32 => Some(DType::F32),
            GgmlType::F16 => Some(DType::F16),
            GgmlType::Bf16 => Some(DType::Bf16),
            GgmlType::Q4_0 => Some(DType::Q4_0),
            GgmlType::Q8_0 => Some(DType::Q8_0),
            _ => None,
        }
    }

    /// The type of a glmhal dtype.
    pub fn of(dtype: DType) -> Option<Self> {
        match dtype {
            DType::F32 => Some(GgmlType::F32),
            DType::F16 => Some(GgmlType::F16),
            DType::Bf16 => Some(GgmlType::Bf16),
            DType::Q4_0 => Some(GgmlType::Q4_0),
            DType::Q8_0 => Some(GgmlType::Q8_0),
            DType::I32 => None,
        }
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    U64(u64),
    /// Any signed integer type.
    I64(i64),
    /// f32 or f64.
    F64(f64),
    /// bool.
    Bool(bool),
    /// string.
    Str(String),
    /// array (of one element type).
    Array(Vec<Value>),
}

impl Value {
    /// As a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// As an unsigned integer (non-negative signed values too).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// As a float (integers too).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            Value::U64(v) => Some(*v as f64),
            Value::I64(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// As an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's info.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Its name (`blk.0.attn_qkv.weight`).
    pub name: String,
    /// Its type.
    pub ty: GgmlType,
    /// Dims outermost first (the reverse of the file's order).
    pub shape: Vec<usize>,
    /// Byte range in the file.
    pub range: std::ops::Range<usize>,
}

/// A parsed file: version, metadata and tensors (whose ranges are checked).
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// 2 or 3.
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts.
    pub data_start: usize,
}

/// Bounds-checked little-endian reads with the field being read named in errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(
        &mut self,
        n: usize,
        what: &dyn Fn() -> String,
    ) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(format!(
                "{}: needs {n} bytes at offset {}, past the end of the file ({} bytes)",
                what(),
                self.at,
                self.bytes.len()
            )),
        }
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> std::result::Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> std::result::Result<u64, String> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> std::result::Result<String, String> {
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(format!(
                "{}: string length {len} is larger than glmhal accepts ({MAX_STRING})",
                what()
            ));
        }
        let b = self.take(len as usize, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{}: string is not UTF-8", what()))
    }

    fn value(
        &mut self,
        ty: u32,
        depth: usize,
        what: &dyn Fn() -> String,
    ) -> std::result::Result<Value, String> {
        let fixed = |c: &mut Self, n: usize| -> std::result::Result<u64, String> {
            let b = c.take(n, what)?;
            let mut a = [0u8; 8];
            a[..n].copy_from_slice(b);
            Ok(u64::from_le_bytes(a))
        };
        Ok(match ty {
            0 => Value::U64(fixed(self, 1)?),
            1 => Value::I64(fixed(self, 1)? as u8 as i8 as i64),
            2 => Value::U64(fixed(self, 2)?),
            3 => Value::I64(fixed(self, 2)? as u16 as i16 as i64),
            4 => Value::U64(fixed(self, 4)?),
            5 => Value::I64(fixed(self, 4)? as u32 as i32 as i64),
            // The decimal an f32 was written from (1e-5, not 9.99999974e-6).
            6 => {
                let v = f32::from_bits(fixed(self, 4)? as u32);
                Value::F64(v.to_string().parse().unwrap_or(v as f64))
            }
            7 => match fixed(self, 1)? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("{}: bool byte {b} is neither 0 nor 1", what())),
            },
            8 => Value::Str(self.string(what)?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!(
                        "{}: arrays nested deeper than {MAX_ARRAY_DEPTH}",
                        what()
                    ));
                }
                let elem = self.u32(what)?;
                let count = self.u64(what)?;
                // Every element takes at least one byte: a count past the
                // remaining bytes is a lie, found before anything is allocated.
                let remaining = (self.bytes.len() - self.at) as u64;
                if count > remaining {
                    return Err(format!(
                        "{}: array of {count} elements cannot fit in the {remaining} bytes left",
                        what()
                    ));
                }
                let mut items = Vec::with_capacity(count as usize);
                for i in 0..count {
                    let item = || format!("{}[{i}]", what());
                    items.push(self.value(elem, depth + 1, &item)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(fixed(self, 8)?),
            11 => Value::I64(fixed(self, 8)? as i64),
            12 => Value::F64(f64::from_bits(fixed(self, 8)?)),
            other => return Err(format!("{}: unknown value type {other}", what())),
        })
    }
}

/// Parses and checks a whole GGUF image: every count against the bytes
/// left, every tensor's type, dims, size, alignment and range.
pub fn parse(bytes: &[u8]) -> std::result::Result<Layout, String> {
    let mut c = Cursor { bytes, at: 0 };
    let (version, tensor_count, kv_count) = header(&mut c)?;
    let metadata = metadata(&mut c, kv_count)?;
    let alignment = alignment(&metadata)?;
    let raw = tensor_table(&mut c, tensor_count)?;
    let data_start = c.at.div_ceil(alignment) * alignment;
    if data_start > bytes.len() {
        return Err(format!(
            "the data section would start at {data_start}, past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    let data_len = bytes.len() - data_start;
    let mut tensors = Vec::with_capacity(raw.len());
    let mut names = std::collections::HashSet::new();
    for entry in raw {
        if !names.insert(entry.name.clone()) {
            return Err(format!("tensor `{}`: appears twice", entry.name));
        }
        tensors.push(place(entry, alignment, data_start, data_len)?);
    }
    check_coverage(&tensors, alignment, data_start, data_len)?;
    Ok(Layout {
        version,
        metadata,
        tensors,
        data_start,
    })
}

/// The magic, the version (2 or 3) and the tensor and metadata counts,
/// each count checked against the bytes that follow.
fn header(c: &mut Cursor<'_>) -> std::result::Result<(u32, u64, u64), String> {
    let magic = c.u32(&|| "magic".into())?;
    if magic != MAGIC {
        return Err(format!(
            "not a GGUF file: magic {:?} (expected \"GGUF\")",
            String::from_utf8_lossy(&magic.to_le_bytes())
        ));
    }
    let version = c.u32(&|| "version".into())?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "GGUF version {version} is not supported (glmhal reads versions 2 and 3; a big-endian file reads as a huge version)"
        ));
    }
    let tensor_count = c.u64(&|| "tensor count".into())?;
    let kv_count = c.u64(&|| "metadata count".into())?;
    // A metadata entry takes at least 12 bytes, a tensor info at least 24.
    let left = (c.bytes.len() - c.at) as u64;
    if kv_count > left / 12 || tensor_count > left / 24 {
        return Err(format!(
            "{kv_count} metadata entries and {tensor_count} tensors cannot fit in the {left} bytes that follow"
        ));
    }
    Ok((version, tensor_count, kv_count))
}

/// The `kv_count` metadata entries by key (a key may appear once).
fn metadata(
    c: &mut Cursor<'_>,
    kv_count: u64,
) -> std::result::Result<BTreeMap<String, Value>, String> {
    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = c.string(&|| format!("metadata entry {i}: key"))?;
        let ty = c.u32(&|| format!("metadata `{key}`: type"))?;
        let value = c.value(ty, 0, &|| format!("metadata `{key}`"))?;
        if metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata `{key}` appears twice"));
        }
    }
    Ok(metadata)
}

/// The data alignment: `general.alignment` (a power of two up to 1 MiB),
/// else [`DEFAULT_ALIGNMENT`].
fn alignment(metadata: &BTreeMap<String, Value>) -> std::result::Result<usize, String> {
    Ok(match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
            _ => {
                return Err(format!(
                    "general.alignment {v:?} is not a power of two up to 1 MiB"
                ))
            }
        },
    })
}

/// A tensor info as the table states it, before its checks against the
/// data section.
struct RawTensor {
    name: String,
    /// Innermost first, as stored.
    dims: Vec<usize>,
    ty: GgmlType,
    /// From the start of the data section.
    offset: u64,
}

/// The `tensor_count` tensor infos of the table.
fn tensor_table(
    c: &mut Cursor<'_>,
    tensor_count: u64,
) -> std::result::Result<Vec<RawTensor>, String> {
    // A count that does not match the table shows as an entry read from
    // the wrong bytes: say so with the error.
    let table = |e: String| {
        format!("{e} (the tensor table does not match its count of {tensor_count}, or is damaged)")
    };
    let mut raw = Vec::new();
    for i in 0..tensor_count {
        let name = c
            .string(&|| format!("tensor info {i}: name"))
            .map_err(table)?;
        let what = |field: &str| table(format!("tensor info {i} `{name}`: {field}"));
        let n_dims = c.u32(&|| what("n_dims"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(what(&format!("{n_dims} dims (1 to {MAX_DIMS} accepted)")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let v = c.u64(&|| what(&format!("dim {d}")))?;
            dims.push(
                usize::try_from(v).map_err(|_| what(&format!("dim {d} = {v} is too large")))?,
            );
        }
        let ty = GgmlType::from_code(c.u32(&|| what("type"))?);
        let offset = c.u64(&|| what("offset"))?;
        raw.push(RawTensor {
            name,
            dims,
            ty,
            offset,
        });
    }
    Ok(raw)
}

/// A tensor's place in the file, once its type, dims, size, alignment and
/// range within the `data_len` bytes at `data_start` are checked.
fn place(
    raw: RawTensor,
    alignment: usize,
    data_start: usize,
    data_len: usize,
) -> std::result::Result<TensorInfo, String> {
    let RawTensor {
        name,
        dims,
        ty,
        offset,
    } = raw;
    let what = |m: String| format!("tensor `{name}`: {m}");
    let (per_block, block_bytes) = ty
        .block()
        .ok_or_else(|| what(format!("unknown tensor type {}", ty.code())))?;
    let numel = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| what(format!("dims {dims:?} overflow")))?;
    if dims[0] % per_block != 0 {
        return Err(what(format!(
            "rows of {} values are not whole {} blocks of {per_block}",
            dims[0],
            ty.name()
        )));
    }
    let size = (numel / per_block)
        .checked_mul(block_bytes)
        .ok_or_else(|| what("size overflows".into()))?;
    let offset =
        usize::try_from(offset).map_err(|_| what(format!("offset {offset} is too large")))?;
    if offset % alignment != 0 {
        return Err(what(format!(
            "offset {offset} is not aligned to {alignment}"
        )));
    }
    let end = offset
        .checked_add(size)
        .filter(|e| *e <= data_len)
        .ok_or_else(|| {
            what(format!(
                "data {offset}..{} runs past the end of the data section ({data_len} bytes)",
                offset.saturating_add(size)
            ))
        })?;
    Ok(TensorInfo {
        name,
        ty,
        shape: dims.into_iter().rev().collect(),
        range: data_start + offset..data_start + end,
    })
}

/// Checks that the tensors cover the data section (past one alignment of
/// padding) and share no bytes: either would mean the table does not match
/// the data.
fn check_coverage(
    tensors: &[TensorInfo],
    alignment: usize,
    data_start: usize,
    data_len: usize,
) -> std::result::Result<(), String> {
    // Data no tensor covers (past one alignment of padding) means the table
    // lists fewer tensors than the file holds.
    let covered = tensors
        .iter()
        .map(|t| t.range.end - data_start)
        .max()
        .unwrap_or(0);
    let slack = covered.div_ceil(alignment) * alignment + alignment;
    if data_len > slack {
        return Err(format!(
            "{} bytes of the data section belong to no tensor: the tensor table ({} tensors) does not match the data",
            data_len - covered,
            tensors.len()
        ));
    }
    // Two tensors may not share bytes: one would read the other's data.
    let mut spans: Vec<&TensorInfo> = tensors.iter().filter(|t| !t.range.is_empty()).collect();
    spans.sort_by_key(|t| t.range.start);
    if let Some(w) = spans.windows(2).find(|w| w[1].range.start < w[0].range.end) {
        return Err(format!(
            "tensors `{}` and `{}` share bytes {}..{}: the tensor table does not match the data",
            w[0].name, w[1].name, w[1].range.start, w[0].range.end
        ));
    }
    Ok(())
}

/// A memory-mapped, checked GGUF file.
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Mmap>,
    /// Its version, metadata and tensors.
    pub layout: Layout,
    by_name: BTreeMap<String, usize>,
}

impl GgufFile {
    /// Maps and checks `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let ctx = || path.display().to_string();
        let file = File::open(path).map_err(|e| HalError::io(format!("opening {}", ctx()), e))?;
        // SAFETY: the map is read-only; like every mmap reader we rely on the
        // file not being truncated by another process while it is open.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| HalError::io(format!("mapping {}", ctx()), e))?;
        let layout = parse(&map).map_err(|m| HalError::invalid(ctx(), m))?;
        let by_name = layout
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path: path.to_path_buf(),
            map: Arc::new(map),
            layout,
            by_name,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole mapped file, shareable with a backend that uses weights in place.
    pub fn shared(&self) -> glmhal_hal::SharedBytes {
        self.map.clone()
    }

    /// Bytes `range` of the mapped file, if it holds them.
    pub fn mapped(&self, range: std::ops::Range<usize>) -> Option<&[u8]> {
        self.map.get(range)
    }

    /// A metadata value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.layout.metadata.get(key)
    }

    /// A tensor's info.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|i| &self.layout.tensors[*i])
    }

    /// A tensor's bytes.
    pub fn bytes(&self, info: &TensorInfo) -> &[u8] {
        &self.map[info.range.clone()]
    }

    /// A tensor of a type glmhal uses as stored, as [`TensorData`].
    pub fn tensor(&self, name: &str) -> Result<TensorData<'_>> {
        let info = self.info(name).ok_or_else(|| {
            HalError::invalid(
                self.path.display().to_string(),
                format!("missing tensor `{name}`"),
            )
        })?;
        let dtype = info.ty.dtype().ok_or_else(|| {
            HalError::invalid(
                self.path.display().to_string(),
                format!(
                    "tensor `{name}` is {}, which is read through a conversion",
                    info.ty.name()
                ),
            )
        })?;
        Ok(TensorData {
            dtype,
            shape: &info.shape,
            bytes: &self.map[info.range.clone()],
            range: info.range.clone(),
        })
    }

    /// Tells the OS a tensor's pages are no longer needed.
    pub fn release(&self, name: &str) {
        if let Some(info) = self.info(name) {
            // SAFETY: a read-only file mapping; dropped pages are re-read if touched.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    info.range.start,
                    info.range.len(),
                )
            };
        }
    }
}
