//! The least a step must read from device memory: every weight once (the
//! embedding table only for the rows looked up, a routed layer's experts
//! only for the experts chosen) and each sequence's visible keys and values
//! once per layer. `glmhal bench` sets a backend's planned reads against it.

use glmhal_hal::DType;

use crate::graph::{SeqStep, WeightTable};
use crate::Model;

impl Model {
    /// Bytes a step of `seqs` must read at least, with a KV cache of `cache_dtype`.
    pub fn minimum_step_reads(&self, seqs: &[SeqStep], cache_dtype: DType) -> u64 {
        let c = &self.config;
        let rows: usize = seqs.iter().map(|s| s.len).sum();
        // Every row may choose the same experts: one token's worth at least,
        // and each row's embedding row.
        let embed_row = self
            .weights
            .lookup("embed")
            .map_or(0, |(_, e)| e.dtype.bytes_for(e.last_dim()) as u64);
        let weights = self.active_weight_bytes(1) + embed_row * rows.saturating_sub(1) as u64;
        let kv_row = cache_dtype.bytes_for(c.kv_heads * c.head_dim) as u64;
        let seen: u64 = seqs.iter().map(|s| (s.start + s.len) as u64).sum();
        weights + c.layers as u64 * 2 * kv_row * seen
    }

    /// Bytes of weights a step of `tokens` rows reads when each row
    /// chooses its own experts: every weight, less the embedding rows not
    /// looked up and the experts no row chooses.
    pub fn active_weight_bytes(&self, tokens: usize) -> u64 {
        let total = self.weight_bytes() as u64;
        let mut idle = 0u64;
        if let Some((_, embed)) = self.weights.lookup("embed") {
            let table = embed.dtype.bytes_for(embed.numel()) as u64;
            let row = embed.dtype.bytes_for(embed.last_dim()) as u64;
            idle += table - (row * tokens as u64).min(table);
        }
        let Some(moe) = &self.config.moe else {
            return total - idle.min(total);
        };
        let unchosen = moe.experts - (tokens * moe.top_k).min(moe.experts);
        for layer in (0..self.config.layers).filter(|l| moe.routes(*l)) {
            for part in ["gate", "up", "down"] {
                if let Some((_, d)) = self
                    .weights
                    .lookup(&format!("layers.{layer}.experts.{part}.weight"))
                {
                    let per_expert = d.dtype.bytes_for(d.numel()) as u64 / moe.experts as u64;
                    idle += per_expert * unchosen as u64;
                }
            }
        }
        total - idle.min(total)
    }
}
