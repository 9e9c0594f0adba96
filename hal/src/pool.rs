//! A pool of freed device allocations keyed by size, for backends whose
//! driver allocations are slow: a freed buffer is kept (up to a byte budget)
//! and handed out again to the next allocation of the same size.

use std::collections::HashMap;
use std::sync::Mutex;

/// Freed allocations (handles of type `H`) by size.
pub struct SizePool<H> {
    free: Mutex<(HashMap<usize, Vec<H>>, usize)>,
    max_idle: usize,
    max_item: usize,
}

impl<H> SizePool<H> {
    /// A pool keeping at most `max_idle` bytes, of allocations up to `max_item` bytes each.
    pub fn new(max_idle: usize, max_item: usize) -> Self {
        SizePool {
            free: Mutex::new((HashMap::new(), 0)),
            max_idle,
            max_item,
        }
    }

    /// A kept allocation of exactly `size` bytes, if any.
    pub fn take(&self, size: usize) -> Option<H> {
        let mut g = self.free.lock().ok()?;
        let h = g.0.get_mut(&size)?.pop()?;
        g.1 -= size;
        Some(h)
    }

    /// Keeps `h` (of `size` bytes) for reuse, or hands it back when the pool
    /// is full or it is too large: the caller then frees it.
    pub fn give(&self, h: H, size: usize) -> Option<H> {
        if size > self.max_item {
            return Some(h);
        }
        match self.free.lock() {
            Ok(mut g) if g.1 + size <= self.max_idle => {
                g.1 += size;
                g.0.entry(size).or_default().push(h);
                None
            }
            _ => Some(h),
        }
    }

    /// Every kept allocation, for the caller to free (before retrying an
    /// allocation that ran out of memory, or at shutdown).
    pub fn drain(&self) -> Vec<H> {
        match self.free.lock() {
            Ok(mut g) => {
                g.1 = 0;
                g.0.drain().flat_map(|(_, v)| v).collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Bytes kept now.
    pub fn idle_bytes(&self) -> usize {
        self.free.lock().map(|g| g.1).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_by_size_within_its_budget() {
        let pool = SizePool::new(100, 60);
        assert_eq!(pool.give(1, 40), None);
        assert_eq!(pool.give(2, 40), None);
        assert_eq!(pool.give(3, 40), Some(3), "over the idle budget");
        assert_eq!(pool.give(4, 70), Some(4), "too large to keep");
        assert_eq!(pool.idle_bytes(), 80);
        assert_eq!(pool.take(30), None);
        assert!(pool.take(40).is_some());
        assert_eq!(pool.drain().len(), 1);
        assert_eq!(pool.idle_bytes(), 0);
    }
}
