//! The mixture-of-experts part of a GLM config (`glm4_moe`: GLM-4.5, 4.6,
//! 4.7): how many experts, how many a token uses, how the router groups
//! them, and which layers keep a dense FFN.

use glmhal_hal::{HalError, Result};
use serde::Serialize;

/// The experts of every layer from `first_dense` on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Moe {
    /// Routed experts per layer (`n_routed_experts`).
    pub experts: usize,
    /// Experts each token is routed to (`num_experts_per_tok`).
    pub top_k: usize,
    /// Width of one expert's FFN (`moe_intermediate_size`).
    pub expert_ffn: usize,
    /// Shared experts, run on every token (`n_shared_experts`); their FFN
    /// is `expert_ffn × shared_experts` wide.
    pub shared_experts: usize,
    /// Layers before the first MoE layer keep a dense FFN (`first_k_dense_replace`).
    pub first_dense: usize,
    /// Equal groups the router splits the experts into (`n_group`).
    pub n_group: usize,
    /// Groups kept per token (`topk_group`).
    pub topk_group: usize,
    /// Whether the chosen weights are divided by their sum (`norm_topk_prob`).
    pub normalize: bool,
    /// Factor on the routed experts' weights (`routed_scaling_factor`).
    pub scaling: f64,
    /// Next-token-prediction layers stored after the last layer
    /// (`num_nextn_predict_layers`): read past, not run.
    pub mtp_layers: usize,
}

impl Moe {
    /// Whether `layer` routes its tokens to experts (else it has a dense FFN).
    pub fn routes(&self, layer: usize) -> bool {
        layer >= self.first_dense
    }

    /// Width of the shared experts' FFN.
    pub fn shared_ffn(&self) -> usize {
        self.expert_ffn * self.shared_experts
    }

    /// Refuses a shape the router cannot take, naming the key.
    pub(crate) fn check(&self) -> Result<()> {
        let bad = |m: String| Err(HalError::invalid("config.json", m));
        if self.experts == 0 || self.top_k == 0 || self.expert_ffn == 0 {
            return bad(
                "`n_routed_experts`, `num_experts_per_tok` and `moe_intermediate_size` must be positive"
                    .into(),
            );
        }
        if self.n_group == 0 || !self.experts.is_multiple_of(self.n_group) {
            return bad(format!(
                "{} experts do not split into `n_group` = {} equal groups",
                self.experts, self.n_group
            ));
        }
        let per = self.experts / self.n_group;
        if self.n_group > 1 && per < 2 {
            return bad(format!(
                "groups of {per} expert: a group's score is its two best experts"
            ));
        }
        if self.topk_group == 0 || self.topk_group > self.n_group {
            return bad(format!(
                "`topk_group` = {} must be in 1..={} (`n_group`)",
                self.topk_group, self.n_group
            ));
        }
        if self.top_k > self.topk_group * per {
            return bad(format!(
                "`num_experts_per_tok` = {} exceeds the {} experts of the {} groups kept",
                self.top_k,
                self.topk_group * per,
                self.topk_group
            ));
        }
        if !self.scaling.is_finite() {
            return bad("`routed_scaling_factor` must be finite".into());
        }
        Ok(())
    }
}
