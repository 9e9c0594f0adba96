//! Reusable kernel buffers, so a decode step does not allocate.
//!
//! Every op converts its inputs to f32 and builds its result in a buffer
//! of its own; a step runs hundreds of ops, each on the same few sizes.
//! [`Scratch`] takes a vector from a pool and gives it back on drop, so
//! after the first steps the buffers are only resized within their
//! capacity. There is one pool per element type for the whole process, not
//! one per thread: a step runs on whichever worker the thread pool picks,
//! and per-thread pools warmed again each time a step landed on another
//! worker. Very large buffers (long prefills) are not kept, and a byte
//! budget bounds what the pool holds.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Vectors kept per element type: enough for both workers in a decode
/// product of eight rows, which holds three per row.
const POOLED: usize = 128;
/// Bytes of capacity kept per element type.
const POOL_BYTES: usize = 16 << 20;
/// Largest vector kept, in bytes.
const LARGEST_POOLED: usize = 4 << 20;
/// Smallest capacity a vector is given, in bytes: buffers that grow with the
/// context (attention's scores, one per position) then keep their storage
/// from step to step up to 4096 positions instead of doubling as it grows.
const SMALLEST: usize = 16 << 10;

/// An element type with a pool.
pub(crate) trait Pooled: Copy + 'static {
    /// Runs `f` on the pool of vectors of this type (held for the call;
    /// `f` takes no scratch itself). `None` if a panic left it poisoned.
    fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> Option<R>;
}

macro_rules! pooled {
    ($($t:ty),*) => {$(
        impl Pooled for $t {
            fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> Option<R> {
                static POOL: Mutex<Vec<Vec<$t>>> = Mutex::new(Vec::new());
                POOL.lock().ok().map(|mut pool| f(&mut pool))
            }
        }
    )*};
}
pooled!(
    f32,
    f64,
    u8,
    i8,
    i16,
    i32,
    usize,
    bool,
    (f32, f32),
    CacheLine
);

/// Sixteen f32 on one 64-byte cache line: storage for buffers the GEMM
/// tiles read with aligned vectors.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub(crate) struct CacheLine(pub [f32; 16]);

/// A vector borrowed from the pool; it goes back when dropped.
pub(crate) struct Scratch<T: Pooled>(Vec<T>);

impl<T: Pooled> Scratch<T> {
    /// `len` copies of `value`, in the smallest pooled vector that holds
    /// them (or, when none does, the largest, grown): the same requests
    /// every step then settle on the same vectors and stop reallocating.
    pub fn filled(len: usize, value: T) -> Self {
        let mut v = Self::take(|pool| {
            let fits = pool
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= len)
                .min_by_key(|(_, v)| v.capacity());
            let largest = || pool.iter().enumerate().max_by_key(|(_, v)| v.capacity());
            fits.or_else(largest).map(|(i, _)| i)
        });
        v.resize(len, value);
        v
    }

    /// An empty vector with at least [`SMALLEST`] bytes of capacity.
    pub fn empty() -> Self {
        Self::take(|pool| pool.len().checked_sub(1))
    }

    /// The pooled vector `choose` picks (a new one when it picks none), emptied.
    fn take(choose: impl FnOnce(&[Vec<T>]) -> Option<usize>) -> Self {
        let mut v = T::with_pool(|pool| choose(pool).map(|i| pool.swap_remove(i)))
            .flatten()
            .unwrap_or_default();
        v.clear();
        v.reserve(SMALLEST / std::mem::size_of::<T>().max(1));
        Scratch(v)
    }
}

impl<T: Pooled> Default for Scratch<T> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<T: Pooled> Deref for Scratch<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Pooled> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<'a, T: Pooled> IntoIterator for &'a Scratch<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Pooled> Drop for Scratch<T> {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() == 0 || v.capacity() * std::mem::size_of::<T>() > LARGEST_POOLED {
            return;
        }
        // A pool that cannot be reached simply lets the vector go. Over its
        // budget, the pool lets its largest vectors go first: small ones
        // serve every decode step, large ones (a prompt's) are rarer.
        T::with_pool(|pool| {
            pool.push(v);
            let size = std::mem::size_of::<T>();
            let mut kept: usize = pool.iter().map(|p| p.capacity() * size).sum();
            while pool.len() > POOLED || kept > POOL_BYTES {
                let Some((largest, _)) = pool.iter().enumerate().max_by_key(|(_, v)| v.capacity())
                else {
                    break;
                };
                kept -= pool.swap_remove(largest).capacity() * size;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One element type per test: the pools are process-wide and tests run
    // in parallel.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Reused(f32);
    #[derive(Clone, Copy)]
    struct Budgeted(#[allow(dead_code)] f64);
    #[derive(Clone, Copy)]
    struct Large(#[allow(dead_code)] i32);
    #[derive(Clone, Copy)]
    struct Fitted(#[allow(dead_code)] u8);
    pooled!(Reused, Budgeted, Large, Fitted);

    #[test]
    fn a_returned_buffer_is_reused_and_comes_back_filled() {
        let first = Scratch::filled(1000, Reused(1.0));
        let ptr = first.as_ptr();
        drop(first);
        let second = Scratch::filled(500, Reused(2.0));
        assert_eq!(second.as_ptr(), ptr, "the pooled vector is reused");
        assert!(second.iter().all(|v| *v == Reused(2.0)) && second.len() == 500);
    }

    #[test]
    fn a_request_takes_the_smallest_vector_that_holds_it() {
        let sizes = [100_000usize, 40_000, 70_000];
        let held: Vec<Scratch<Fitted>> = sizes
            .iter()
            .map(|&n| Scratch::filled(n, Fitted(0)))
            .collect();
        let ptrs: Vec<*const Fitted> = held.iter().map(|v| v.as_ptr()).collect();
        drop(held);
        let got = Scratch::filled(50_000, Fitted(1));
        assert_eq!(
            got.as_ptr(),
            ptrs[2],
            "the 70 000-byte vector, not the first or the last"
        );
    }

    #[test]
    fn the_pool_keeps_at_most_its_byte_budget() {
        let held: Vec<Scratch<Budgeted>> = (0..POOLED)
            .map(|_| Scratch::filled(300_000, Budgeted(0.0)))
            .collect();
        drop(held);
        let bytes =
            Budgeted::with_pool(|pool| pool.iter().map(|v| v.capacity() * 8).sum::<usize>());
        assert!(bytes.is_some_and(|b| b <= POOL_BYTES), "{bytes:?}");
    }

    #[test]
    fn very_large_buffers_are_not_kept() {
        let big = Scratch::filled(LARGEST_POOLED / 4 + 1, Large(0));
        drop(big);
        let kept = Large::with_pool(|pool| pool.iter().all(|v| v.capacity() * 4 <= LARGEST_POOLED));
        assert_eq!(kept, Some(true));
    }
}
