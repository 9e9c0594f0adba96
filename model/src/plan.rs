//! Activation memory planning by liveness: buffers whose lifetimes do not
//! overlap share bytes of one arena.

/// Offsets are aligned to this (enough for any device's storage-buffer offset rules).
pub const ALIGN: usize = 256;

/// One activation: its size and the first and last step that touch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    /// Bytes.
    pub bytes: usize,
    /// Index of the node that writes it first.
    pub first: usize,
    /// Index of the last node that reads or writes it.
    pub last: usize,
}

/// Where each activation lives in the arena.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Byte offset of each activation.
    pub offsets: Vec<usize>,
    /// Arena size: the planned peak.
    pub peak: usize,
    /// What one buffer per activation would have needed.
    pub unplanned: usize,
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Greedy by size: each activation, largest first, goes at the lowest offset
/// that collides with no already placed activation alive at the same time.
pub fn plan(acts: &[Lifetime]) -> Plan {
    let mut plan = Plan::default();
    Planner::default().plan_into(acts, &mut plan);
    plan
}

/// The planner's working lists, kept between steps so that planning
/// (every decode step) allocates nothing once they have grown.
#[derive(Clone, Debug, Default)]
pub struct Planner {
    order: Vec<usize>,
    placed: Vec<usize>,
    busy: Vec<(usize, usize)>,
}

impl Planner {
    /// [`plan`] into `out`, reusing `out`'s and this planner's storage.
    pub fn plan_into(&mut self, acts: &[Lifetime], out: &mut Plan) {
        let Planner {
            order,
            placed,
            busy,
        } = self;
        order.clear();
        order.extend(0..acts.len());
        // Unstable (it sorts in place) with the index breaking ties: the
        // same order as a stable sort by size.
        order.sort_unstable_by_key(|&i| (std::cmp::Reverse(acts[i].bytes), i));
        let offsets = &mut out.offsets;
        offsets.clear();
        offsets.resize(acts.len(), 0);
        placed.clear();
        let mut peak = 0;
        for &i in order.iter() {
            let a = acts[i];
            busy.clear();
            busy.extend(
                placed
                    .iter()
                    .filter(|&&j| acts[j].first <= a.last && a.first <= acts[j].last)
                    .map(|&j| (offsets[j], offsets[j] + align(acts[j].bytes))),
            );
            busy.sort_unstable();
            let mut at = 0;
            for &(s, e) in busy.iter() {
                if at + align(a.bytes) <= s {
                    break;
                }
                at = at.max(e);
            }
            offsets[i] = at;
            peak = peak.max(at + align(a.bytes));
            placed.push(i);
        }
        out.peak = peak;
        out.unplanned = acts.iter().map(|a| align(a.bytes)).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disjoint_lifetimes_share_and_overlapping_ones_do_not() {
        let acts = [
            Lifetime {
                bytes: 1000,
                first: 0,
                last: 1,
            },
            Lifetime {
                bytes: 1000,
                first: 1,
                last: 2,
            },
            Lifetime {
                bytes: 1000,
                first: 2,
                last: 3,
            },
        ];
        let p = plan(&acts);
        assert_eq!(p.peak, 2 * align(1000));
        assert_eq!(p.unplanned, 3 * align(1000));
        for i in 0..acts.len() {
            for j in 0..acts.len() {
                let overlap_time = acts[i].first <= acts[j].last && acts[j].first <= acts[i].last;
                let overlap_mem = p.offsets[i] < p.offsets[j] + align(acts[j].bytes)
                    && p.offsets[j] < p.offsets[i] + align(acts[i].bytes);
                assert!(
                    i == j || !(overlap_time && overlap_mem),
                    "{i} and {j} collide"
                );
            }
        }
    }

    #[test]
    fn random_plans_never_collide() {
        let mut rng = glmhal_hal::Rng::new(5);
        for _ in 0..50 {
            let acts: Vec<Lifetime> = (0..30)
                .map(|_| {
                    let first = rng.below(40);
                    Lifetime {
                        bytes: 1 + rng.below(5000),
                        first,
                        last: first + rng.below(10),
                    }
                })
                .collect();
            let p = plan(&acts);
            assert!(p.peak <= p.unplanned);
            for i in 0..acts.len() {
                for j in i + 1..acts.len() {
                    let t = acts[i].first <= acts[j].last && acts[j].first <= acts[i].last;
                    let m = p.offsets[i] < p.offsets[j] + acts[j].bytes
                        && p.offsets[j] < p.offsets[i] + acts[i].bytes;
                    assert!(!(t && m));
                }
            }
        }
    }
}
