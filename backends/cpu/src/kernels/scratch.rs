//! Reusable kernel buffers, so a decode step does not allocate.
//!
//! Every op converts its inputs to f32 and builds its result in a buffer
//! of its own; a step runs hundreds of ops, each on the same few sizes.
//! [`Scratch`] takes a vector from a per-thread pool and gives it back on
//! drop, so after the first steps the buffers are only resized within
//! their capacity. Very large buffers (long prefills) are not kept, which
//! bounds what the pool holds.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Vectors kept per thread and element type.
const POOLED: usize = 8;
/// Largest vector kept, in bytes.
const LARGEST_POOLED: usize = 4 << 20;
/// Smallest capacity a vector is given, in bytes: buffers that grow with the
/// context (attention's scores, one per position) then keep their storage
/// from step to step up to 4096 positions instead of doubling as it grows.
const SMALLEST: usize = 16 << 10;

/// An element type with a per-thread pool.
pub(crate) trait Pooled: Copy + 'static {
    /// Runs `f` on this thread's pool of vectors; `None` when the pool
    /// cannot be reached (already borrowed, or the thread is exiting).
    fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> Option<R>;
}

macro_rules! pooled {
    ($($t:ty),*) => {$(
        impl Pooled for $t {
            fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> Option<R> {
                thread_local!(static POOL: RefCell<Vec<Vec<$t>>> = const { RefCell::new(Vec::new()) });
                POOL.try_with(|pool| pool.try_borrow_mut().ok().map(|mut p| f(&mut p)))
                    .ok()
                    .flatten()
            }
        }
    )*};
}
pooled!(f32, f64, i8, i16, i32, usize, bool, (f32, f32));

/// A vector borrowed from the pool; it goes back when dropped.
pub(crate) struct Scratch<T: Pooled>(Vec<T>);

impl<T: Pooled> Scratch<T> {
    /// `len` copies of `value`.
    pub fn filled(len: usize, value: T) -> Self {
        let mut v = Self::empty();
        v.resize(len, value);
        v
    }

    /// An empty vector with at least [`SMALLEST`] bytes of capacity.
    pub fn empty() -> Self {
        let mut v = T::with_pool(|pool| pool.pop())
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
        // A pool that cannot be reached simply lets the vector go.
        T::with_pool(|pool| {
            if pool.len() < POOLED {
                pool.push(v);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_and_comes_back_filled() {
        let first = Scratch::filled(1000, 1.0f32);
        let ptr = first.as_ptr();
        drop(first);
        let second = Scratch::filled(500, 2.0f32);
        assert_eq!(second.as_ptr(), ptr, "the pooled vector is reused");
        assert!(second.iter().all(|v| *v == 2.0) && second.len() == 500);
    }

    #[test]
    fn very_large_buffers_are_not_kept() {
        let big = Scratch::filled(LARGEST_POOLED / 4 + 1, 0i32);
        drop(big);
        let kept = i32::with_pool(|pool| pool.iter().all(|v| v.capacity() * 4 <= LARGEST_POOLED));
        assert_eq!(kept, Some(true));
    }
}
