//! The least a step must read from device memory: every weight once (the
//! embedding table only for the rows looked up) and each sequence's visible
//! keys and values once per layer. `glmhal bench` sets a backend's planned
//! reads against it.

use glmhal_hal::DType;

use crate::graph::{SeqStep, WeightTable};
use crate::Model;

impl Model {
    /// Bytes a step of `seqs` must read at least, with a KV cache of `cache_dtype`.
    pub fn minimum_step_reads(&self, seqs: &[SeqStep], cache_dtype: DType) -> u64 {
        let c = &self.config;
        let rows: usize = seqs.iter().map(|s| s.len).sum();
        let mut weights = self.weight_bytes() as u64;
        if let Some((_, embed)) = self.weights.lookup("embed") {
            let table = embed.dtype.bytes_for(embed.numel()) as u64;
            let row = embed.dtype.bytes_for(embed.last_dim()) as u64;
            weights = weights - table.min(weights) + row * rows as u64;
        }
        let kv_row = cache_dtype.bytes_for(c.kv_heads * c.head_dim) as u64;
        let seen: u64 = seqs.iter().map(|s| (s.start + s.len) as u64).sum();
        weights + c.layers as u64 * 2 * kv_row * seen
    }
}
