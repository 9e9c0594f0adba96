//! safetensors files: a memory-mapped reader that checks every header field,
//! and a streaming writer.
//!
//! Layout: u64 little-endian header length, a JSON header
//! `{name: {dtype, shape, data_offsets: [start, end]}, "__metadata__": {...}}`,
//! then the data; offsets count from the start of the data.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use glmhal_hal::output::AtomicFile;
use glmhal_hal::{DType, HalError, Result};
use memmap2::Mmap;
use serde_json::Value;

/// Largest header accepted (the format's own reference reader uses 100 MB).
const MAX_HEADER: u64 = 100 << 20;

/// One tensor's entry in a header.
#[derive(Clone, Debug)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A borrowed tensor of a memory-mapped file.
#[derive(Clone, Debug)]
pub struct TensorData<'a> {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: &'a [usize],
    /// The raw little-endian bytes.
    pub bytes: &'a [u8],
    /// Where those bytes lie in the mapped file.
    pub range: std::ops::Range<usize>,
}

/// A memory-mapped safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    map: std::sync::Arc<Mmap>,
    data_start: usize,
    entries: BTreeMap<String, Entry>,
}

/// Maps a safetensors dtype name to a glmhal dtype.
pub fn dtype_from_name(name: &str) -> Option<DType> {
    match name {
        "F32" => Some(DType::F32),
        "F16" => Some(DType::F16),
        "BF16" => Some(DType::Bf16),
        "I32" => Some(DType::I32),
        _ => None,
    }
}

fn dtype_name(d: DType) -> Result<&'static str> {
    match d {
        DType::F32 => Ok("F32"),
        DType::F16 => Ok("F16"),
        DType::Bf16 => Ok("BF16"),
        DType::I32 => Ok("I32"),
        other => Err(HalError::invalid(
            "safetensors",
            format!("{other} cannot be stored in safetensors"),
        )),
    }
}

impl SafetensorsFile {
    /// Maps and checks a file. Every tensor's offsets must lie inside the data
    /// section and match its shape and dtype.
    pub fn open(path: &Path) -> Result<Self> {
        let ctx = || path.display().to_string();
        let file = File::open(path).map_err(|e| HalError::io(format!("opening {}", ctx()), e))?;
        // SAFETY: the map is read-only; like every mmap reader we rely on the
        // file not being truncated by another process while it is open.
        let map = unsafe { Mmap::map(&file) }
            .map_err(|e| HalError::io(format!("mapping {}", ctx()), e))?;
        let (data_start, entries) = parse_layout(&map).map_err(|m| HalError::invalid(ctx(), m))?;
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            map: std::sync::Arc::new(map),
            data_start,
            entries,
        })
    }

    /// The whole mapped file, shareable with a backend that uses weights in place.
    pub fn shared(&self) -> glmhal_hal::SharedBytes {
        self.map.clone()
    }

    /// Bytes `range` of the mapped file, if it holds them.
    pub fn mapped(&self, range: std::ops::Range<usize>) -> Option<&[u8]> {
        self.map.get(range)
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Whether the file holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Tells the OS the tensor's pages are no longer needed (after they were
    /// copied to a device), so a load does not keep two resident copies.
    pub fn release(&self, name: &str) {
        if let Some(e) = self.entries.get(name) {
            // SAFETY: the map is a read-only file mapping; dropped pages are
            // re-read from the file if touched again.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.data_start + e.start,
                    e.end - e.start,
                )
            };
        }
    }

    /// A tensor's dtype, shape and bytes. Dtypes other than F32/F16/BF16/I32
    /// are an error naming the tensor.
    pub fn tensor(&self, name: &str) -> Result<TensorData<'_>> {
        let e = self.entries.get(name).ok_or_else(|| {
            HalError::invalid(
                self.path.display().to_string(),
                format!("missing tensor `{name}`"),
            )
        })?;
        let dtype = dtype_from_name(&e.dtype).ok_or_else(|| {
            HalError::invalid(
                self.path.display().to_string(),
                format!(
                    "tensor `{name}` has unsupported dtype {} (glmhal reads F32, F16, BF16)",
                    e.dtype
                ),
            )
        })?;
        Ok(TensorData {
            dtype,
            shape: &e.shape,
            bytes: &self.map[self.data_start + e.start..self.data_start + e.end],
            range: self.data_start + e.start..self.data_start + e.end,
        })
    }
}

/// Checks a whole safetensors image (header and offsets) without mapping a
/// file: the start of the data section and every entry, or what is wrong.
fn parse_layout(bytes: &[u8]) -> std::result::Result<(usize, BTreeMap<String, Entry>), String> {
    if bytes.len() < 8 {
        return Err(format!(
            "too short for a safetensors file ({} bytes)",
            bytes.len()
        ));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[..8]);
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER || header_len > (bytes.len() - 8) as u64 {
        return Err(format!(
            "header length {header_len} is larger than the file ({} bytes) allows",
            bytes.len()
        ));
    }
    let data_start = 8 + header_len as usize;
    let header: Value = serde_json::from_slice(&bytes[8..data_start])
        .map_err(|e| format!("header is not valid JSON: {e}"))?;
    let obj = header
        .as_object()
        .ok_or_else(|| "header is not a JSON object".to_string())?;
    let data_len = bytes.len() - data_start;
    let mut entries = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let entry = parse_entry(name, v).map_err(|m| format!("tensor `{name}`: {m}"))?;
        if entry.end > data_len {
            return Err(format!(
                "tensor `{name}`: data {}..{} runs past the end of the data ({data_len} bytes)",
                entry.start, entry.end
            ));
        }
        if let Some(dt) = dtype_from_name(&entry.dtype) {
            let numel = entry
                .shape
                .iter()
                .try_fold(1usize, |a, d| a.checked_mul(*d));
            let want = numel.and_then(|n| n.checked_mul(dt.block_bytes()));
            if want != Some(entry.end - entry.start) {
                return Err(format!(
                    "tensor `{name}`: shape {:?} of {} needs {} bytes but offsets give {}",
                    entry.shape,
                    entry.dtype,
                    want.map_or("too many".into(), |w| w.to_string()),
                    entry.end - entry.start
                ));
            }
        }
        entries.insert(name.clone(), entry);
    }
    // Two tensors may not share bytes: one would read the other's data.
    let mut spans: Vec<(&String, &Entry)> =
        entries.iter().filter(|(_, e)| e.end > e.start).collect();
    spans.sort_by_key(|(_, e)| e.start);
    if let Some(w) = spans.windows(2).find(|w| w[1].1.start < w[0].1.end) {
        return Err(format!(
            "tensors `{}` ({}..{}) and `{}` ({}..{}) share bytes",
            w[0].0, w[0].1.start, w[0].1.end, w[1].0, w[1].1.start, w[1].1.end
        ));
    }
    Ok((data_start, entries))
}

/// Validates a safetensors image in memory and lists its tensors; the entry
/// point of the fuzz target and of tests that corrupt files.
pub fn check_bytes(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    parse_layout(bytes).map(|(_, e)| e.into_keys().collect())
}

fn parse_entry(name: &str, v: &Value) -> std::result::Result<Entry, String> {
    let _ = name;
    let o = v.as_object().ok_or("entry is not an object")?;
    let dtype = o
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or("missing `dtype`")?
        .to_string();
    let shape = o
        .get("shape")
        .and_then(Value::as_array)
        .ok_or("missing `shape`")?
        .iter()
        .map(|d| {
            d.as_u64()
                .and_then(|d| usize::try_from(d).ok())
                .ok_or("shape entries must be integers")
        })
        .collect::<std::result::Result<Vec<usize>, _>>()?;
    let offs = o
        .get("data_offsets")
        .and_then(Value::as_array)
        .ok_or("missing `data_offsets`")?;
    if offs.len() != 2 {
        return Err("`data_offsets` must be [start, end]".into());
    }
    let off = |i: usize| {
        offs[i]
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or("offsets must be integers")
    };
    let (start, end) = (off(0)?, off(1)?);
    if start > end {
        return Err(format!("`data_offsets` [{start}, {end}] run backwards"));
    }
    Ok(Entry {
        dtype,
        shape,
        start,
        end,
    })
}

/// Writes a safetensors file tensor by tensor, without holding them all.
pub struct SafetensorsWriter {
    out: AtomicFile,
    pending: Vec<(String, usize)>,
    /// Bytes still owed to the tensor being written in parts.
    open: Option<(String, usize)>,
}

impl SafetensorsWriter {
    /// Creates `path` and writes the header for `tensors` (name, dtype, shape),
    /// which must then be written in the same order with [`Self::write`].
    pub fn create(
        path: &Path,
        tensors: &[(String, DType, Vec<usize>)],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let mut header = serde_json::Map::new();
        if !metadata.is_empty() {
            header.insert(
                "__metadata__".into(),
                serde_json::to_value(metadata).unwrap_or_default(),
            );
        }
        let mut offset = 0usize;
        let mut pending = Vec::new();
        for (name, dtype, shape) in tensors {
            let bytes = dtype.bytes_for(shape.iter().product());
            header.insert(
                name.clone(),
                serde_json::json!({"dtype": dtype_name(*dtype)?, "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            pending.push((name.clone(), bytes));
            offset += bytes;
        }
        let mut text = serde_json::to_vec(&Value::Object(header))
            .map_err(|e| HalError::invalid("safetensors header", e.to_string()))?;
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        while (8 + text.len()) % 8 != 0 {
            text.push(b' ');
        }
        // Written beside its name and renamed into place by `finish`.
        let mut out = AtomicFile::create(path)?;
        out.write_all(&(text.len() as u64).to_le_bytes())?;
        out.write_all(&text)?;
        pending.reverse();
        Ok(SafetensorsWriter {
            out,
            pending,
            open: None,
        })
    }

    /// Writes the next tensor's bytes in one piece.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_part(name, bytes)?;
        match &self.open {
            None => Ok(()),
            Some((n, left)) => Err(HalError::invalid(
                "safetensors writer",
                format!("`{n}` is {left} bytes short"),
            )),
        }
    }

    /// Writes the next piece of a tensor (large tensors are streamed in parts).
    pub fn write_part(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let (want_name, left) = match self.open.take() {
            Some(open) => open,
            None => self.pending.pop().ok_or_else(|| {
                HalError::invalid("safetensors writer", format!("`{name}` was not declared"))
            })?,
        };
        if want_name != name || bytes.len() > left {
            return Err(HalError::invalid(
                "safetensors writer",
                format!(
                    "expected `{want_name}` (up to {left} bytes), got `{name}` ({} bytes)",
                    bytes.len()
                ),
            ));
        }
        self.out.write_all(bytes)?;
        if left > bytes.len() {
            self.open = Some((want_name, left - bytes.len()));
        }
        Ok(())
    }

    /// Completes the file and moves it into place; every declared tensor
    /// must have been written (otherwise nothing is left behind).
    pub fn finish(self) -> Result<()> {
        if let Some((name, _)) = self.open.as_ref().or(self.pending.last()) {
            return Err(HalError::invalid(
                "safetensors writer",
                format!("`{name}` was never written"),
            ));
        }
        self.out.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("glmhal-st-{}-{name}", std::process::id()))
    }

    fn write_sample(path: &Path) {
        let t = vec![
            ("a".to_string(), DType::F32, vec![2, 2]),
            ("b".to_string(), DType::Bf16, vec![3]),
        ];
        let mut w = SafetensorsWriter::create(path, &t, &BTreeMap::new()).unwrap();
        w.write("a", &[0u8; 16]).unwrap();
        w.write("b", &[1u8; 6]).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn tensors_that_share_bytes_are_refused() {
        let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0u8; 12]);
        let err = check_bytes(&bytes).unwrap_err();
        assert!(
            err.contains("`a`") && err.contains("`b`") && err.contains("share bytes"),
            "{err}"
        );
    }

    #[test]
    fn round_trip() {
        let p = tmp("rt.safetensors");
        write_sample(&p);
        let f = SafetensorsFile::open(&p).unwrap();
        assert_eq!(f.names().collect::<Vec<_>>(), vec!["a", "b"]);
        let b = f.tensor("b").unwrap();
        assert_eq!(
            (b.dtype, b.shape, b.bytes),
            (DType::Bf16, &[3usize][..], &[1u8; 6][..])
        );
        assert!(f
            .tensor("c")
            .unwrap_err()
            .to_string()
            .contains("missing tensor `c`"));
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn truncated_and_lying_files_are_errors() {
        let p = tmp("bad.safetensors");
        write_sample(&p);
        let good = std::fs::read(&p).unwrap();
        // Truncated data.
        std::fs::write(&p, &good[..good.len() - 3]).unwrap();
        assert!(SafetensorsFile::open(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("runs past the end"));
        // A header length larger than the file.
        let mut lie = good.clone();
        lie[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        std::fs::write(&p, &lie).unwrap();
        assert!(SafetensorsFile::open(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("header length"));
        // Too short.
        std::fs::write(&p, b"abc").unwrap();
        assert!(SafetensorsFile::open(&p).is_err());
        // Shape that disagrees with the offsets.
        let text = String::from_utf8_lossy(&good).replace("[2,2]", "[2,3]");
        std::fs::write(&p, text.as_bytes()).unwrap();
        assert!(SafetensorsFile::open(&p)
            .err()
            .unwrap()
            .to_string()
            .contains("needs 24 bytes"));
        // Unsupported dtype, reported when the tensor is used.
        let text = String::from_utf8_lossy(&good).replace("\"BF16\"", "\"F64\" ");
        std::fs::write(&p, text.as_bytes()).unwrap();
        let f = SafetensorsFile::open(&p).unwrap();
        assert!(f
            .tensor("b")
            .unwrap_err()
            .to_string()
            .contains("unsupported dtype F64"));
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn corrupt_bytes_never_panic() {
        let p = tmp("fuzz.safetensors");
        write_sample(&p);
        let good = std::fs::read(&p).unwrap();
        let mut rng = glmhal_hal::Rng::new(11);
        for i in 0..400 {
            let mut b = good.clone();
            match i % 3 {
                0 => b.truncate(rng.below(b.len())),
                1 => {
                    let at = rng.below(b.len());
                    b[at] = rng.next_u64() as u8;
                }
                _ => {
                    let at = 8 + rng.below(b.len() - 8);
                    b[at] = b"0123456789[]{},:\""[rng.below(17)];
                }
            }
            std::fs::write(&p, &b).unwrap();
            if let Ok(f) = SafetensorsFile::open(&p) {
                for n in f.names().map(String::from).collect::<Vec<_>>() {
                    let _ = f.tensor(&n);
                }
            }
        }
        std::fs::remove_file(p).ok();
    }
}
