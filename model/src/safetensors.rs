//! safetensors files: a memory-mapped reader that checks every header field,
//! and a streaming writer.
//!
//! Layout: u64 little-endian header length, a JSON header
//! `{name: {dtype, shape, data_offsets: [start, end]}, "__metadata__": {...}}`,
//! then the data; offsets count from the start of the data.
//!
//! Hugging Face's `safetensors` crate parses and validates the header in
//! place in the mapped file (the format's reference reader, so glmhal accepts
//! exactly the files it does: tensors cover the data without holes or
//! overlaps, and each one's offsets match its shape and dtype). Its errors do
//! not always say which tensor is wrong or how, so a refused file is looked at
//! again here to name the tensor and the problem.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use glmhal_hal::output::AtomicFile;
use glmhal_hal::{DType, HalError, Result};
use memmap2::Mmap;
use safetensors::tensor::TensorInfo;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use serde::Deserialize;
use serde_json::Value;

/// One tensor's entry in a header.
#[derive(Clone, Debug)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

impl From<&TensorInfo> for Entry {
    fn from(info: &TensorInfo) -> Self {
        Entry {
            dtype: info.dtype,
            shape: info.shape.clone(),
            start: info.data_offsets.0,
            end: info.data_offsets.1,
        }
    }
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

/// The glmhal dtype of a parsed safetensors dtype, if glmhal computes in it.
fn dtype_from_safetensors(d: Dtype) -> Option<DType> {
    match d {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::Bf16),
        Dtype::I32 => Some(DType::I32),
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
    /// section and match its shape and dtype, and together the tensors must
    /// cover the data exactly (no shared bytes, no bytes that belong to none).
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
        let dtype = dtype_from_safetensors(e.dtype).ok_or_else(|| {
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

/// Checks a whole safetensors image (header and offsets) in place: the start
/// of the data section and every entry, or what is wrong.
fn parse_layout(bytes: &[u8]) -> std::result::Result<(usize, BTreeMap<String, Entry>), String> {
    let (header_len, metadata) =
        SafeTensors::read_metadata(bytes).map_err(|e| explain(bytes, &e))?;
    let entries = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| (name, Entry::from(info)))
        .collect();
    Ok((8 + header_len, entries))
}

/// Validates a safetensors image in memory and lists its tensors; the entry
/// point of the fuzz target and of tests that corrupt files.
pub fn check_bytes(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    parse_layout(bytes).map(|(_, e)| e.into_keys().collect())
}

/// Says what is wrong with an image the safetensors crate refused, naming the
/// tensor where there is one; the crate's own words are the last resort.
fn explain(bytes: &[u8], err: &SafeTensorError) -> String {
    let len = bytes.len();
    let Some(len_bytes) = bytes.first_chunk::<8>() else {
        return format!("too short for a safetensors file ({len} bytes)");
    };
    let header_len = u64::from_le_bytes(*len_bytes);
    let header = usize::try_from(header_len)
        .ok()
        .and_then(|n| bytes.get(8..n.checked_add(8)?));
    match (err, header) {
        (_, None) => {
            format!("header length {header_len} is larger than the file ({len} bytes) allows")
        }
        (SafeTensorError::HeaderTooLarge, Some(_)) => {
            format!("header length {header_len} is over the safetensors format's limit of 100 MB")
        }
        (SafeTensorError::InvalidHeader(e), _) => format!("header is not UTF-8: {e}"),
        (SafeTensorError::InvalidHeaderDeserialization(e), Some(_)) if !e.is_data() => {
            format!("header is not valid JSON: {e}")
        }
        (_, Some(h)) => explain_header(h, len - 8 - h.len())
            .unwrap_or_else(|| format!("not a valid safetensors file: {err}")),
    }
}

/// The first problem with a header that is JSON: an entry that is not a
/// tensor description, or offsets that do not tile the `data_len` bytes of
/// data. None if nothing is found.
fn explain_header(header: &[u8], data_len: usize) -> Option<String> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(header) else {
        return Some("header is not a JSON object".into());
    };
    let mut entries = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            if !(v.is_null()
                || v.as_object()
                    .is_some_and(|o| o.values().all(Value::is_string)))
            {
                return Some("`__metadata__` must map names to strings".into());
            }
            continue;
        }
        match TensorInfo::deserialize(&v) {
            Ok(info) => {
                entries.insert(name, Entry::from(&info));
            }
            Err(e) => return Some(format!("tensor `{name}`: {}", entry_problem(&v, &e))),
        }
    }
    for (name, e) in &entries {
        if e.start > e.end {
            return Some(format!(
                "tensor `{name}`: `data_offsets` [{}, {}] run backwards",
                e.start, e.end
            ));
        }
        if e.end > data_len {
            return Some(format!(
                "tensor `{name}`: data {}..{} runs past the end of the data ({data_len} bytes)",
                e.start, e.end
            ));
        }
        let bits = e
            .shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .and_then(|n| n.checked_mul(e.dtype.bitsize()));
        let want = bits.filter(|b| b % 8 == 0).map(|b| b / 8);
        if want != Some(e.end - e.start) {
            let needs = match bits {
                None => "too many bytes".to_string(),
                Some(b) if b % 8 != 0 => format!("{b} bits, not whole bytes,"),
                Some(b) => format!("{} bytes", b / 8),
            };
            return Some(format!(
                "tensor `{name}`: shape {:?} of {} needs {needs} but offsets give {}",
                e.shape,
                e.dtype,
                e.end - e.start
            ));
        }
    }
    // Tensors must tile the data: two that share bytes would read each
    // other's data, and bytes that belong to none could hide another payload.
    let mut spans: Vec<(&String, &Entry)> =
        entries.iter().filter(|(_, e)| e.end > e.start).collect();
    spans.sort_by_key(|(_, e)| e.start);
    let mut covered = 0;
    for w in spans.windows(2) {
        let ((a, ea), (b, eb)) = (w[0], w[1]);
        if eb.start < ea.end {
            return Some(format!(
                "tensors `{a}` ({}..{}) and `{b}` ({}..{}) share bytes",
                ea.start, ea.end, eb.start, eb.end
            ));
        }
    }
    for (name, e) in &spans {
        if e.start > covered {
            return Some(format!(
                "data bytes {covered}..{} belong to no tensor (the next is `{name}`)",
                e.start
            ));
        }
        covered = e.end;
    }
    if covered < data_len {
        return Some(format!(
            "data bytes {covered}..{data_len} after the last tensor belong to no tensor"
        ));
    }
    // An empty tensor must sit where one tensor ends and the next begins.
    for (name, e) in entries.iter().filter(|(_, e)| e.end == e.start) {
        if let Some((inside, s)) = spans
            .iter()
            .find(|(_, s)| s.start < e.start && e.start < s.end)
        {
            return Some(format!(
                "tensor `{name}`: empty, at offset {} inside the data of `{inside}` ({}..{})",
                e.start, s.start, s.end
            ));
        }
    }
    None
}

/// What is wrong with one header entry that is not a tensor description.
fn entry_problem(v: &Value, e: &serde_json::Error) -> String {
    let Some(o) = v.as_object() else {
        return "entry is not an object".into();
    };
    for field in ["dtype", "shape", "data_offsets"] {
        if !o.contains_key(field) {
            return format!("missing `{field}`");
        }
    }
    match o.get("dtype") {
        Some(d @ Value::String(name)) if Dtype::deserialize(d).is_err() => {
            format!("unknown dtype `{name}`")
        }
        _ => e.to_string(),
    }
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
        let err = check_bytes(&image(header, 12)).unwrap_err();
        assert!(
            err.contains("`a`") && err.contains("`b`") && err.contains("share bytes"),
            "{err}"
        );
    }

    /// A safetensors image of `header` followed by `data` zero bytes.
    fn image(header: &str, data: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        bytes
    }

    #[test]
    fn each_malformed_header_is_named_in_glmhal_words() {
        let a = r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
        for (header, data, says) in [
            (format!("{{{a}}}"), 8, None),
            (format!("{{{a},\"__metadata__\":{{\"k\":\"v\"}}}}"), 8, None),
            (
                format!("{{{a}}}"),
                12,
                Some("data bytes 8..12 after the last tensor belong to no tensor"),
            ),
            (
                format!(r#"{{{a},"b":{{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}}}"#),
                16,
                Some("data bytes 8..12 belong to no tensor (the next is `b`)"),
            ),
            (
                r#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#.into(),
                8,
                Some("tensor `a`: unknown dtype `F33`"),
            ),
            (
                r#"{"a":{"dtype":"F32","data_offsets":[0,8]}}"#.into(),
                8,
                Some("tensor `a`: missing `shape`"),
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#.into(),
                8,
                Some("tensor `a`: invalid value: integer `-2`"),
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#.into(),
                8,
                Some("tensor `a`: `data_offsets` [8, 0] run backwards"),
            ),
            (
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#.into(),
                2,
                Some("shape [3] of F4 needs 12 bits, not whole bytes, but offsets give 2"),
            ),
            (
                format!("{{{a},\"__metadata__\":{{\"k\":1}}}}"),
                8,
                Some("`__metadata__` must map names to strings"),
            ),
            (
                format!(r#"{{{a},"z":{{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}}}"#),
                8,
                Some("tensor `z`: empty, at offset 4 inside the data of `a` (0..8)"),
            ),
            (
                r#"{"a":3}"#.into(),
                0,
                Some("tensor `a`: entry is not an object"),
            ),
            ("[1, 2]".into(), 0, Some("header is not a JSON object")),
            ("{\"a\":".into(), 0, Some("header is not valid JSON")),
        ] {
            let got = check_bytes(&image(&header, data));
            match says {
                None => assert_eq!(got, Ok(vec!["a".to_string()]), "{header}"),
                Some(says) => {
                    let err = got.unwrap_err();
                    assert!(err.contains(says), "{header}: `{says}` not in `{err}`");
                }
            }
        }
        let mut bad_utf8 = image("{\"\u{e9}\":{}}", 0);
        bad_utf8[10] = 0xff;
        assert!(check_bytes(&bad_utf8).unwrap_err().contains("not UTF-8"));
        // A header the file could hold but the format's 100 MB cap refuses.
        let mut huge = image("{}", 100_000_000);
        huge[..8].copy_from_slice(&100_000_001u64.to_le_bytes());
        assert!(check_bytes(&huge).unwrap_err().contains("limit of 100 MB"));
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
        // A dtype glmhal does not compute in, reported when the tensor is used
        // (I16 has BF16's size, so the file itself is sound).
        let text = String::from_utf8_lossy(&good).replace("\"BF16\"", "\"I16\" ");
        std::fs::write(&p, text.as_bytes()).unwrap();
        let f = SafetensorsFile::open(&p).unwrap();
        assert!(f
            .tensor("b")
            .unwrap_err()
            .to_string()
            .contains("unsupported dtype I16"));
        // A wider dtype whose offsets are too short for it is refused on open.
        let text = String::from_utf8_lossy(&good).replace("\"BF16\"", "\"F64\" ");
        std::fs::write(&p, text.as_bytes()).unwrap();
        let err = SafetensorsFile::open(&p).err().unwrap().to_string();
        assert!(
            err.contains("tensor `b`: shape [3] of F64 needs 24 bytes but offsets give 6"),
            "{err}"
        );
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
