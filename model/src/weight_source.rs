//! Where each canonical weight of a checkpoint comes from.

/// Where a canonical weight comes from: one stored tensor, or several fused by rows.
#[derive(Clone, Debug)]
pub struct WeightSource {
    /// Canonical name.
    pub name: String,
    /// Stored tensors and their expected shapes.
    pub parts: Vec<(String, Vec<usize>)>,
}
