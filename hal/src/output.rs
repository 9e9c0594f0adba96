//! Writing what a command produces without losing what the user has: an
//! output is never one of the command's inputs, and it appears only whole
//! (written beside its final name, renamed into place when complete; a
//! failed write leaves nothing behind).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{HalError, Result};

/// Checks, before any work, that `path` can be an output of a command
/// that reads `inputs`: it is not one of them (by resolved path or by file
/// identity, so links and `./` spellings count), not a directory, and its
/// directory exists.
pub fn check_output(path: &Path, inputs: &[PathBuf]) -> Result<()> {
    let name = path.display().to_string();
    if path.is_dir() {
        return Err(HalError::invalid(name, "is a directory; give a file name"));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(HalError::invalid(
            name,
            format!("its directory {} does not exist", parent.display()),
        ));
    }
    if let Some(input) = inputs.iter().find(|i| same_file(path, i)) {
        let what = if input.as_path() == path {
            "is an input of this command".to_string()
        } else {
            format!("is the same file as the input {}", input.display())
        };
        return Err(HalError::invalid(
            name,
            format!("{what}; it is never written over: choose another output"),
        ));
    }
    Ok(())
}

/// Whether `a` and `b` name one existing file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
            return true;
        }
    }
    let _ = (ma, mb);
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// A file being written under a temporary name beside its destination;
/// [`AtomicFile::commit`] renames it into place, and dropping it
/// uncommitted removes it.
pub struct AtomicFile {
    out: Option<BufWriter<File>>,
    temp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Starts writing `dest`.
    pub fn create(dest: &Path) -> Result<AtomicFile> {
        let file_name = dest
            .file_name()
            .ok_or_else(|| HalError::invalid(dest.display().to_string(), "is not a file name"))?;
        let temp = dest.with_file_name(format!(
            ".{}.glmhal-{}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let file = File::create(&temp)
            .map_err(|e| HalError::io(format!("creating {}", temp.display()), e))?;
        Ok(AtomicFile {
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// The final name.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let dest = self.dest.display().to_string();
        match self.out.as_mut() {
            Some(out) => out
                .write_all(bytes)
                .map_err(|e| HalError::io(format!("writing {dest}"), e)),
            None => Err(HalError::invalid(dest, "written after it was committed")),
        }
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let dest = self.dest.display().to_string();
        let out = self
            .out
            .take()
            .ok_or_else(|| HalError::invalid(dest.clone(), "committed twice"))?;
        let file = out
            .into_inner()
            .map_err(|e| HalError::io(format!("writing {dest}"), e.into_error()))?;
        file.sync_all()
            .map_err(|e| HalError::io(format!("writing {dest}"), e))?;
        drop(file);
        std::fs::rename(&self.temp, &self.dest).map_err(|e| {
            HalError::io(
                format!("moving {} into place as {dest}", self.temp.display()),
                e,
            )
        })
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.out.as_mut() {
            Some(out) => out.write(buf),
            None => Err(std::io::Error::other("written after it was committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().map_or(Ok(()), |o| o.flush())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `dest` whole or not at all.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes)?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("glmhal-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn outputs_are_never_inputs_and_need_a_directory() {
        let dir = scratch("check");
        let input = dir.join("model.safetensors");
        std::fs::write(&input, b"weights").unwrap_or_else(|e| panic!("{e}"));
        let inputs = vec![input.clone()];
        assert!(check_output(&input, &inputs).is_err());
        // Another spelling of the same file.
        let spelled = dir.join(".").join("model.safetensors");
        assert!(check_output(&spelled, &inputs).is_err());
        #[cfg(unix)]
        {
            let link = dir.join("link.safetensors");
            std::os::unix::fs::symlink(&input, &link).unwrap_or_else(|e| panic!("{e}"));
            let err = check_output(&link, &inputs).unwrap_err().to_string();
            assert!(err.contains("same file as the input"), "{err}");
        }
        assert!(check_output(&dir.join("logits.npy"), &inputs).is_ok());
        assert!(check_output(&dir, &inputs).is_err());
        let missing = dir.join("no").join("x.json");
        assert!(check_output(&missing, &[])
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        assert_eq!(std::fs::read(&input).unwrap_or_default(), b"weights");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_appear_whole_or_not_at_all() {
        let dir = scratch("atomic");
        let dest = dir.join("out.bin");
        std::fs::write(&dest, b"old").unwrap_or_else(|e| panic!("{e}"));
        {
            let mut f = AtomicFile::create(&dest).unwrap_or_else(|e| panic!("{e}"));
            f.write_all(b"half").unwrap_or_else(|e| panic!("{e}"));
            // Dropped without commit: the old file stays, no temporary is left.
        }
        assert_eq!(std::fs::read(&dest).unwrap_or_default(), b"old");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        write_atomic(&dest, b"new").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(std::fs::read(&dest).unwrap_or_default(), b"new");
        assert_eq!(std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
