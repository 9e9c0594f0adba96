//! The preallocated KV cache: per layer one K and one V buffer holding
//! `slots` sequences of `capacity` positions.

use glmhal_hal::{Backend, Buffer, DType, HalError, Result};

use crate::config::ModelConfig;

/// A KV cache on a device.
pub struct KvCache {
    /// Per-layer key buffers `[slots, capacity, kv_heads, head_dim]`.
    pub k: Vec<Buffer>,
    /// Per-layer value buffers, same layout.
    pub v: Vec<Buffer>,
    /// Positions per sequence.
    pub capacity: usize,
    /// Sequences it can hold.
    pub slots: usize,
    /// Element type (f32 or f16).
    pub dtype: DType,
}

impl KvCache {
    /// Allocates the cache once.
    pub fn new(
        backend: &dyn Backend,
        config: &ModelConfig,
        capacity: usize,
        slots: usize,
        dtype: DType,
    ) -> Result<Self> {
        if !matches!(dtype, DType::F32 | DType::F16 | DType::Bf16) {
            return Err(HalError::invalid(
                "kv cache",
                format!("dtype {dtype} is not f32, f16 or bf16"),
            ));
        }
        if capacity == 0 || slots == 0 {
            return Err(HalError::invalid(
                "kv cache",
                "capacity and slots must be positive",
            ));
        }
        let bytes = dtype.bytes_for(slots * capacity * config.kv_heads * config.head_dim);
        let mut k = Vec::with_capacity(config.layers);
        let mut v = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            k.push(backend.alloc(bytes)?);
            v.push(backend.alloc(bytes)?);
        }
        Ok(KvCache {
            k,
            v,
            capacity,
            slots,
            dtype,
        })
    }

    /// Bytes on the device.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(Buffer::len).sum()
    }
}
