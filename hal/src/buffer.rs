//! Device buffers and the tensor views that ops take.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{HalError, Result};
use crate::layout::TensorDesc;

/// Identifies one opened device, so a buffer is never handed to a backend
/// instance that does not own it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceId(u64);

impl DeviceId {
    /// A fresh id, unique within the process.
    pub fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        DeviceId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Memory owned by a backend; the implementation frees it on drop.
///
/// Backends implement this for their own buffer type and downcast with
/// [`DeviceBuffer::as_any`] when an op hands it back.
pub trait DeviceBuffer: Any + Send + Sync + fmt::Debug {
    /// Size in bytes.
    fn len(&self) -> usize;
    /// True for a zero-byte buffer.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The device that owns the memory.
    fn device(&self) -> DeviceId;
    /// For downcasting to the backend's concrete type.
    fn as_any(&self) -> &dyn Any;
}

/// Implements [`DeviceBuffer`] for a backend's buffer struct that has
/// `len: usize` and `device: DeviceId` fields (and implements `Debug`).
#[macro_export]
macro_rules! device_buffer {
    ($ty:ty) => {
        impl $crate::DeviceBuffer for $ty {
            fn len(&self) -> usize {
                self.len
            }
            fn device(&self) -> $crate::DeviceId {
                self.device
            }
            fn as_any(&self) -> &dyn ::std::any::Any {
                self
            }
        }
    };
}

/// An owned device buffer. Dropping it frees the device memory.
#[derive(Debug)]
pub struct Buffer(Box<dyn DeviceBuffer>);

impl Buffer {
    /// Wraps a backend's buffer.
    pub fn new(inner: impl DeviceBuffer) -> Self {
        Buffer(Box::new(inner))
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a zero-byte buffer.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The owning device.
    pub fn device(&self) -> DeviceId {
        self.0.device()
    }

    /// The backend's concrete buffer, or `None` if it is of another type.
    pub fn downcast<T: DeviceBuffer>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }

    /// The byte range `offset..offset + len`, or an error naming `context`
    /// when it does not fit the buffer (every backend checks copies this way).
    pub fn checked_range(
        &self,
        context: &str,
        offset: usize,
        len: usize,
    ) -> Result<std::ops::Range<usize>> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len() => Ok(offset..end),
            _ => Err(HalError::invalid(
                context,
                format!(
                    "{len} bytes at offset {offset} do not fit a buffer of {}",
                    self.len()
                ),
            )),
        }
    }

    /// A view of this buffer as a tensor.
    pub fn view(&self, desc: TensorDesc) -> TensorRef<'_> {
        TensorRef { buffer: self, desc }
    }
}

/// A tensor: a descriptor into a buffer. Inputs and outputs of ops are views.
#[derive(Clone, Debug)]
pub struct TensorRef<'a> {
    /// The memory.
    pub buffer: &'a Buffer,
    /// Where in it the tensor lives.
    pub desc: TensorDesc,
}

impl TensorRef<'_> {
    /// Whether both name the same tensor: one buffer, one descriptor.
    pub fn is_same(&self, other: &TensorRef<'_>) -> bool {
        same_buffer(self.buffer, other.buffer) && self.desc == other.desc
    }

    /// True when two views share a buffer and their byte ranges intersect.
    pub fn overlaps(&self, other: &TensorRef<'_>) -> bool {
        if !same_buffer(self.buffer, other.buffer) {
            return false;
        }
        let a = self.desc.byte_range();
        let b = other.desc.byte_range();
        a.start < b.end && b.start < a.end
    }
}

fn same_buffer(a: &Buffer, b: &Buffer) -> bool {
    std::ptr::addr_eq(
        a.0.as_ref() as *const dyn DeviceBuffer,
        b.0.as_ref() as *const dyn DeviceBuffer,
    )
}

/// Checks what every backend must check before running an op: each view fits
/// its buffer, every buffer belongs to `device`, and outputs overlap neither
/// each other nor any input (so backends may read inputs while writing outputs).
pub fn check_views(
    backend: &str,
    device: DeviceId,
    inputs: &[TensorRef<'_>],
    outputs: &[TensorRef<'_>],
) -> Result<()> {
    for (role, views) in [("input", inputs), ("output", outputs)] {
        for (i, t) in views.iter().enumerate() {
            if t.buffer.device() != device {
                return Err(HalError::invalid(
                    format!("{backend} {role} {i}"),
                    "the buffer belongs to another device or backend",
                ));
            }
            t.desc
                .validate(t.buffer.len())
                .map_err(|e| HalError::invalid(format!("{backend} {role} {i}"), e.to_string()))?;
        }
    }
    for (i, out) in outputs.iter().enumerate() {
        for (j, other) in outputs.iter().enumerate().skip(i + 1) {
            if out.overlaps(other) {
                return Err(HalError::invalid(
                    format!("{backend} outputs {i} and {j}"),
                    "output views overlap",
                ));
            }
        }
        for (j, inp) in inputs.iter().enumerate() {
            if out.overlaps(inp) {
                return Err(HalError::invalid(
                    format!("{backend} output {i} and input {j}"),
                    "an output overlaps an input; ops do not run in place",
                ));
            }
        }
    }
    Ok(())
}
