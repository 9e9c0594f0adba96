//! Tensor descriptors: dtype, shape, element strides and a byte offset.
//!
//! A descriptor says where a tensor's elements live inside a buffer, so the
//! same buffer can hold slices, transposes and padded views. Strides count
//! elements (not bytes), like ACL and PyTorch. For quantized dtypes the
//! innermost dimension must be contiguous and every other stride a whole
//! number of blocks, because a block is the smallest addressable unit.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::dtype::DType;
use crate::error::{HalError, Result};

/// Sizes or strides of a tensor's dimensions, outermost first: inline up to
/// six (every GLM tensor), so cloning a descriptor, which every op call
/// does, never touches the heap.
pub type Dims = SmallVec<[usize; 6]>;

/// Where a tensor lives inside a buffer and how to read it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorDesc {
    /// Element type.
    pub dtype: DType,
    /// Dimensions, outermost first.
    pub shape: Dims,
    /// Distance between neighbours along each dimension, in elements.
    pub strides: Dims,
    /// Byte offset of element `[0, 0, ...]` from the start of the buffer.
    pub offset: usize,
}

impl TensorDesc {
    /// A densely packed row-major tensor at offset 0.
    pub fn contiguous(dtype: DType, shape: &[usize]) -> Self {
        TensorDesc {
            dtype,
            shape: Dims::from_slice(shape),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// A row-major tensor whose rows (outer dimensions) are spaced by the given
    /// strides; helper for views into larger storage.
    pub fn strided(dtype: DType, shape: &[usize], strides: &[usize], offset: usize) -> Self {
        TensorDesc {
            dtype,
            shape: Dims::from_slice(shape),
            strides: Dims::from_slice(strides),
            offset,
        }
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the last dimension (1 for a scalar).
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows: the product of all dimensions but the last.
    pub fn rows(&self) -> usize {
        self.shape[..self.rank().saturating_sub(1)].iter().product()
    }

    /// True when the elements are densely packed in row-major order.
    pub fn is_contiguous(&self) -> bool {
        self.strides == contiguous_strides(&self.shape)
    }

    /// True when the last dimension is packed (stride 1), the condition most
    /// kernels need to read a row as one slice.
    pub fn rows_contiguous(&self) -> bool {
        self.strides.last().is_none_or(|&s| s == 1) || self.last_dim() == 1
    }

    /// Element offset (from `offset`) of the element at a multi-index.
    pub fn element_index(&self, index: &[usize]) -> usize {
        index.iter().zip(&self.strides).map(|(i, s)| i * s).sum()
    }

    /// Element offset of the first element of logical row `row`, counting rows
    /// over all dimensions but the last in row-major order.
    pub fn row_start(&self, row: usize) -> usize {
        let mut rest = row;
        let mut at = 0;
        for d in (0..self.rank().saturating_sub(1)).rev() {
            let n = self.shape[d];
            at += (rest % n) * self.strides[d];
            rest /= n;
        }
        at
    }

    /// Byte position of the element at element offset `elem` (from [`Self::element_index`]).
    /// For quantized dtypes `elem` must be block aligned.
    pub fn byte_at(&self, elem: usize) -> usize {
        self.offset + elem / self.dtype.block_elems() * self.dtype.block_bytes()
    }

    /// Element offset one past the furthest element the view can touch.
    pub fn span_elems(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        1 + self
            .shape
            .iter()
            .zip(&self.strides)
            .map(|(n, s)| (n - 1) * s)
            .sum::<usize>()
    }

    /// The byte range `[start, end)` that contains every element of the view.
    pub fn byte_range(&self) -> std::ops::Range<usize> {
        let span = self.span_elems();
        let end = self.offset + self.dtype.bytes_for(span);
        self.offset..end
    }

    /// Checks that the descriptor is self-consistent and fits in a buffer of
    /// `buffer_len` bytes.
    pub fn validate(&self, buffer_len: usize) -> Result<()> {
        if self.shape.len() != self.strides.len() {
            return Err(HalError::Layout(format!(
                "shape {:?} has {} dims but strides {:?} have {}",
                self.shape,
                self.shape.len(),
                self.strides,
                self.strides.len()
            )));
        }
        if self.shape.contains(&0) {
            return Err(HalError::Layout(format!(
                "zero-size tensor: shape {:?}",
                self.shape
            )));
        }
        if self.dtype.is_quantized() {
            let block = self.dtype.block_elems();
            let last = self.last_dim();
            if !last.is_multiple_of(block) {
                return Err(HalError::Layout(format!(
                    "{} rows must be a multiple of {block} elements, got a last dimension of {last}",
                    self.dtype
                )));
            }
            if !self.rows_contiguous() {
                return Err(HalError::Layout(format!(
                    "{} tensors need a contiguous last dimension, got strides {:?}",
                    self.dtype, self.strides
                )));
            }
            let rank = self.rank();
            if let Some(bad) = self.strides[..rank.saturating_sub(1)]
                .iter()
                .find(|s| **s % block != 0)
            {
                return Err(HalError::Layout(format!(
                    "{} strides must be whole blocks of {block}, got {bad} in {:?}",
                    self.dtype, self.strides
                )));
            }
        }
        let range = self.byte_range();
        if range.end > buffer_len {
            return Err(HalError::Layout(format!(
                "view {:?} (strides {:?}, offset {}) needs bytes {}..{} but the buffer has {buffer_len}",
                self.shape, self.strides, self.offset, range.start, range.end
            )));
        }
        Ok(())
    }

    /// The view read as `shape` (same rank, at most 4), folded to four dims
    /// with size-1 dims added outermost: `(dims, strides)`, where a dim of
    /// size 1 read as larger gets stride 0 (broadcast). The form GPU kernels
    /// index through. `None` for rank 0, above 4, or a rank mismatch.
    pub fn folded4(&self, shape: &[usize]) -> Option<([usize; 4], [usize; 4])> {
        let rank = shape.len();
        if rank == 0 || rank > 4 || self.rank() != rank {
            return None;
        }
        let mut dims = [1usize; 4];
        let mut strides = [0usize; 4];
        for d in 0..rank {
            dims[4 - rank + d] = shape[d];
            strides[4 - rank + d] = if self.shape[d] == 1 && shape[d] != 1 {
                0
            } else {
                self.strides[d]
            };
        }
        Some((dims, strides))
    }

    /// A view with dimensions `a` and `b` swapped (no data moves).
    pub fn transposed(&self, a: usize, b: usize) -> Self {
        let mut t = self.clone();
        t.shape.swap(a, b);
        t.strides.swap(a, b);
        t
    }

    /// A view of `len` entries of dimension `dim` starting at `start`.
    pub fn narrowed(&self, dim: usize, start: usize, len: usize) -> Result<Self> {
        if dim >= self.rank() || start + len > self.shape[dim] {
            return Err(HalError::Layout(format!(
                "cannot narrow dim {dim} of {:?} to {start}..{}",
                self.shape,
                start + len
            )));
        }
        let mut t = self.clone();
        let elem = start * self.strides[dim];
        if self.dtype.is_quantized() && !elem.is_multiple_of(self.dtype.block_elems()) {
            return Err(HalError::Layout(format!(
                "narrowing a {} tensor must start on a block boundary",
                self.dtype
            )));
        }
        t.offset = self.byte_at(elem);
        t.shape[dim] = len;
        Ok(t)
    }

    /// Entry `index` of the first dimension, one rank lower (one expert of
    /// a stacked `[E, N, K]` weight).
    pub fn select(&self, index: usize) -> Result<Self> {
        let mut t = self.narrowed(0, index, 1)?;
        t.shape.remove(0);
        t.strides.remove(0);
        Ok(t)
    }

    /// Short text such as `f16[16,128] strides [256,1] +64` for reports and errors.
    pub fn describe(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        let mut s = format!("{}[{}]", self.dtype, dims.join(","));
        if !self.is_contiguous() {
            let st: Vec<String> = self.strides.iter().map(|d| d.to_string()).collect();
            s.push_str(&format!(" strides [{}]", st.join(",")));
        }
        if self.offset != 0 {
            s.push_str(&format!(" +{}", self.offset));
        }
        s
    }

    /// ` at [i,j,k]`: where element `index` (logical, row-major order) sits.
    pub fn describe_index(&self, index: usize) -> String {
        let mut rest = index;
        let mut at = vec![0; self.shape.len()];
        for (d, n) in self.shape.iter().enumerate().rev() {
            at[d] = rest % n.max(&1);
            rest /= n.max(&1);
        }
        let parts: Vec<String> = at.iter().map(|i| i.to_string()).collect();
        format!(" at [{}]", parts.join(","))
    }
}

/// Row-major strides for a shape.
pub fn contiguous_strides(shape: &[usize]) -> Dims {
    let mut strides: Dims = smallvec::smallvec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded4_pads_outer_dims_and_zeroes_broadcast_strides() {
        let d = TensorDesc::strided(DType::F32, &[3, 1], &[5, 1], 0);
        let (dims, strides) = d.folded4(&[3, 7]).unwrap_or_else(|| panic!("rank 2 folds"));
        assert_eq!((dims, strides), ([1, 1, 3, 7], [0, 0, 5, 0]));
        assert!(d.folded4(&[3, 7, 1]).is_none());
        assert!(TensorDesc::contiguous(DType::F32, &[1, 1, 1, 1, 2])
            .folded4(&[1, 1, 1, 1, 2])
            .is_none());
    }

    #[test]
    fn contiguous_views() {
        let t = TensorDesc::contiguous(DType::F32, &[2, 3, 4]);
        assert_eq!(t.strides[..], [12, 4, 1]);
        assert!(t.is_contiguous());
        assert_eq!(t.byte_range(), 0..96);
        assert_eq!(t.row_start(4), 16);
        t.validate(96).unwrap();
        assert!(t.validate(95).is_err());
    }

    #[test]
    fn transposes_and_narrows() {
        let t = TensorDesc::contiguous(DType::F16, &[4, 6]);
        let tt = t.transposed(0, 1);
        assert_eq!(tt.shape[..], [6, 4]);
        assert!(!tt.is_contiguous());
        assert_eq!(tt.element_index(&[2, 3]), 3 * 6 + 2);
        assert_eq!(tt.byte_range(), 0..48);
        let n = t.narrowed(1, 2, 3).unwrap();
        assert_eq!(n.offset, 4);
        assert_eq!(n.span_elems(), 3 * 6 + 3);
        assert_eq!(n.row_start(1), 6);
        assert!(t.narrowed(1, 5, 3).is_err());
    }

    #[test]
    fn quantized_rules() {
        let q = TensorDesc::contiguous(DType::Q8_0, &[3, 64]);
        q.validate(3 * 2 * 34).unwrap();
        assert_eq!(q.byte_at(q.row_start(2)), 2 * 2 * 34);
        let bad = TensorDesc::contiguous(DType::Q4_0, &[3, 33]);
        assert!(bad
            .validate(1 << 20)
            .unwrap_err()
            .to_string()
            .contains("multiple of 32"));
        let padded = TensorDesc::strided(DType::Q4_0, &[2, 32], &[48, 1], 0);
        assert!(padded
            .validate(1 << 20)
            .unwrap_err()
            .to_string()
            .contains("whole blocks"));
        assert!(q.narrowed(1, 16, 32).is_err());
        // One expert of a stacked Q8_0 weight starts on its own rows' blocks.
        let experts = TensorDesc::contiguous(DType::Q8_0, &[4, 3, 64]);
        let third = experts.select(2).unwrap();
        assert_eq!(third.shape[..], [3, 64]);
        assert_eq!(third.offset, 2 * 3 * 2 * 34);
        assert!(experts.select(4).is_err());
    }

    #[test]
    fn zero_size_and_rank_errors() {
        let z = TensorDesc::contiguous(DType::F32, &[0, 4]);
        assert!(z
            .validate(64)
            .unwrap_err()
            .to_string()
            .contains("zero-size"));
        let mut r = TensorDesc::contiguous(DType::F32, &[2, 2]);
        r.strides.pop();
        assert!(r.validate(64).is_err());
    }
}
