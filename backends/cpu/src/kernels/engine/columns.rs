//! An `[M, N]` f32 result that parallel tasks fill by column ranges.
//!
//! The matrix products split their work by weight rows, which are output
//! columns: each task owns a column range for every output row. Writing
//! those ranges in place saves a transposed intermediate and the pass that
//! transposes it back.

use std::marker::PhantomData;

/// Row-major `[m, n]` storage shared by tasks that own disjoint column ranges.
pub(crate) struct Columns<'a> {
    ptr: *mut f32,
    m: usize,
    n: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: tasks only reach the storage through `segment`, whose contract
// keeps every live segment disjoint; the borrow outlives them all.
unsafe impl Send for Columns<'_> {}
// SAFETY: as above.
unsafe impl Sync for Columns<'_> {}

impl<'a> Columns<'a> {
    /// Wraps `out`, which holds `m` rows of `n` values.
    pub fn new(out: &'a mut [f32], m: usize, n: usize) -> Self {
        assert_eq!(out.len(), m * n, "an [m, n] result");
        Self {
            ptr: out.as_mut_ptr(),
            m,
            n,
            _borrow: PhantomData,
        }
    }

    /// Rows of the result.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// Columns `j0..j0 + len` of row `i`.
    ///
    /// # Safety
    /// No two segments alive at the same time may overlap: concurrent
    /// callers must own disjoint column ranges.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn segment(&self, i: usize, j0: usize, len: usize) -> &mut [f32] {
        assert!(i < self.m && j0 + len <= self.n, "inside the result");
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(i * self.n + j0), len) }
    }

    /// Sets columns `j0..j0 + len` of every row from `sums`, which holds
    /// them column by column: `out[i][j0 + jj] = sums[jj·ld + i]`.
    ///
    /// # Safety
    /// As for [`Columns::segment`]: the caller owns columns `j0..j0 + len`.
    pub unsafe fn set_columns(&self, j0: usize, len: usize, sums: &[f32], ld: usize) {
        assert!(ld >= self.m && sums.len() >= len.saturating_sub(1) * ld + self.m);
        for i in 0..self.m {
            // SAFETY: the caller owns these columns.
            let row = unsafe { self.segment(i, j0, len) };
            for (jj, o) in row.iter_mut().enumerate() {
                *o = sums[jj * ld + i];
            }
        }
    }
}
