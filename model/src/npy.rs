//! Little-endian f32 NumPy arrays (format version 1.0), for logits and dumps.

use std::path::Path;

use glmhal_hal::{HalError, Result};

/// Writes `data` with `shape` as an `.npy` file.
pub fn write_f32(path: &Path, data: &[f32], shape: &[usize]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces and a newline to 64 bytes.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    glmhal_hal::output::write_atomic(path, &bytes)
}

/// Reads an `.npy` file of little-endian f32 in C order: its values and shape.
pub fn read_f32(path: &Path) -> Result<(Vec<f32>, Vec<usize>)> {
    let bytes =
        std::fs::read(path).map_err(|e| HalError::io(format!("reading {}", path.display()), e))?;
    let bad = |why: &str| HalError::invalid(format!("{}", path.display()), why.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" || bytes[6] != 1 {
        return Err(bad("not a version 1 .npy file"));
    }
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = bytes
        .get(10..10 + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("its header is cut short or not text"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad("only little-endian f32 arrays in C order are read"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| bad("its header has no shape"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .map_err(|_| bad("its shape is not a list of sizes"))
        })
        .collect::<Result<Vec<_>>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| bad("its shape overflows"))?;
    let data = &bytes[10 + header_len..];
    if data.len() != count.saturating_mul(4) {
        return Err(bad("its data does not match its shape"));
    }
    let values = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((values, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_round_trip_and_bad_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("glmhal-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("a.npy");
        write_f32(&path, &[1.0, -2.5, 3.0, 0.0, 5.0, 6.0], &[2, 3])
            .unwrap_or_else(|e| panic!("{e}"));
        let (v, s) = read_f32(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v, s), (vec![1.0, -2.5, 3.0, 0.0, 5.0, 6.0], vec![2, 3]));
        write_f32(&path, &[7.0], &[1]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_f32(&path).unwrap_or_else(|e| panic!("{e}")).1, vec![1]);
        std::fs::write(&path, b"\x93NUMPY\x01\x00\x05\x00{'de").unwrap_or_else(|e| panic!("{e}"));
        assert!(read_f32(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
