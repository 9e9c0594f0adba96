//! Where each canonical weight of a checkpoint comes from.

/// Where a canonical weight comes from: one stored tensor, or several fused
/// by rows or stacked (one expert each).
#[derive(Clone, Debug, Default)]
pub struct WeightSource {
    /// Canonical name.
    pub name: String,
    /// Stored tensors and their expected shapes.
    pub parts: Vec<(String, Vec<usize>)>,
    /// The parts are stacked along a new first dim (experts `[E, N, K]`
    /// from one `[N, K]` tensor each) rather than concatenated by rows.
    pub stacked: bool,
    /// Kept in f32 whatever dtype the other matrices are stored or
    /// converted in: the router, whose near-ties a narrower format reorders.
    pub f32: bool,
}
