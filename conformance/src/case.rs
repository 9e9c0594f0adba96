//! A conformance case: one op with fully described inputs and outputs.

use glmhal_hal::{DType, HostTensor, Op, OpKind, Result, TensorDesc};
use serde::Serialize;

use glmhal_hal::rng::{hash_str, Rng};

/// How a tensor's storage is filled.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// Uniform in `[-scale, scale]` (then rounded or quantized to the dtype).
    Uniform(f32),
    /// Token ids uniform in `[0, bound)`.
    Ids(usize),
    /// These exact i32 values.
    Values(Vec<i32>),
    /// Uniform in `[-scale, scale]`, then these (logical element index,
    /// value) pairs written over it: a maximum in the last column, keys
    /// that draw the attention, values near a tie.
    Planted {
        /// Range of the uniform part.
        scale: f32,
        /// Elements set afterwards.
        values: Vec<(usize, f32)>,
    },
}

/// One tensor of a case: a view into storage of a given size.
#[derive(Clone, Debug, Serialize)]
pub struct TensorSpec {
    /// The view.
    pub desc: TensorDesc,
    /// Bytes of storage the view lives in (padding and offsets included).
    pub storage: usize,
    /// What the storage holds before the op.
    pub fill: Fill,
}

impl TensorSpec {
    /// A packed tensor.
    pub fn contiguous(dtype: DType, shape: &[usize], fill: Fill) -> Self {
        let desc = TensorDesc::contiguous(dtype, shape);
        let storage = dtype.bytes_for(desc.numel());
        TensorSpec {
            desc,
            storage,
            fill,
        }
    }

    /// Rows (last dim) spaced by `pad` extra elements, starting one padded row
    /// in: a slice of a larger tensor, like q inside a fused qkv projection.
    pub fn padded(dtype: DType, shape: &[usize], pad: usize, fill: Fill) -> Self {
        let rank = shape.len();
        let mut strides = vec![1; rank];
        if rank >= 2 {
            strides[rank - 2] = shape[rank - 1] + pad;
            for d in (0..rank - 2).rev() {
                strides[d] = strides[d + 1] * shape[d + 1];
            }
        }
        // Start `pad` elements in, so the view also has a non-zero offset.
        let desc = TensorDesc::strided(dtype, shape, &strides, dtype.bytes_for(pad));
        let storage = desc.byte_range().end + dtype.bytes_for(pad);
        TensorSpec {
            desc,
            storage,
            fill,
        }
    }

    /// A `[T, heads, D]` slice of a fused per-token row of `row_elems`
    /// elements, starting `start` elements in (q, k or v inside a fused qkv).
    pub fn fused_slice(
        dtype: DType,
        shape: &[usize],
        row_elems: usize,
        start: usize,
        fill: Fill,
    ) -> Self {
        let mut strides = glmhal_hal::contiguous_strides(shape);
        strides[0] = row_elems;
        let desc = TensorDesc::strided(dtype, shape, &strides, dtype.bytes_for(start));
        let storage = dtype.bytes_for(shape[0] * row_elems);
        TensorSpec {
            desc,
            storage,
            fill,
        }
    }

    /// The first `shape[0]` rows of storage with room for `capacity` rows (a
    /// KV cache that is not full).
    pub fn prefix(dtype: DType, shape: &[usize], capacity: usize, fill: Fill) -> Self {
        let desc = TensorDesc::contiguous(dtype, shape);
        let storage = dtype.bytes_for(desc.numel() / shape[0] * capacity);
        TensorSpec {
            desc,
            storage,
            fill,
        }
    }

    /// A view with the last two dims swapped: storage holds `[.., b, a]`, the
    /// view reads it as `[.., a, b]` (a transposed weight or key matrix).
    pub fn transposed(dtype: DType, shape: &[usize], fill: Fill) -> Self {
        let rank = shape.len();
        let mut stored = shape.to_vec();
        stored.swap(rank - 2, rank - 1);
        let base = TensorDesc::contiguous(dtype, &stored);
        let storage = dtype.bytes_for(base.numel());
        TensorSpec {
            desc: base.transposed(rank - 2, rank - 1),
            storage,
            fill,
        }
    }

    /// Builds the host tensor: storage filled from `rng`, viewed through `desc`.
    pub fn materialize(&self, rng: &mut Rng) -> Result<HostTensor> {
        let dtype = self.desc.dtype;
        let blocks = self.storage / dtype.block_bytes();
        let elems = blocks * dtype.block_elems();
        let data = match &self.fill {
            Fill::Uniform(scale) => {
                let vals: Vec<f32> = (0..elems).map(|_| rng.uniform(-*scale, *scale)).collect();
                let mut bytes = glmhal_hal::quant::from_f32(dtype, &vals)?;
                bytes.resize(self.storage, 0);
                bytes
            }
            Fill::Ids(bound) => {
                let mut bytes: Vec<u8> = (0..elems)
                    .flat_map(|_| (rng.below(*bound) as i32).to_le_bytes())
                    .collect();
                bytes.resize(self.storage, 0);
                bytes
            }
            Fill::Planted { scale, values } => {
                let uniform = TensorSpec {
                    fill: Fill::Uniform(*scale),
                    ..self.clone()
                };
                let mut t = uniform.materialize(rng)?;
                let mut logical = t.to_f32();
                for (i, v) in values {
                    if let Some(slot) = logical.get_mut(*i) {
                        *slot = *v;
                    }
                }
                t.write_f32(&logical)?;
                return Ok(t);
            }
            Fill::Values(values) => {
                let mut t = HostTensor::new(self.desc.clone(), vec![0; self.storage])?;
                let mut bytes = std::mem::take(&mut t.data);
                let step = self.desc.strides.last().copied().unwrap_or(1);
                for (i, v) in values.iter().enumerate() {
                    let at = self.desc.offset + i * step * 4;
                    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                bytes
            }
        };
        HostTensor::new(self.desc.clone(), data)
    }
}

/// One op with its tensors.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    /// Stable identifier: op, dtypes, shape and layout (the seed derives from it).
    pub id: String,
    /// The op.
    pub op: Op,
    /// Inputs in catalogue order.
    pub inputs: Vec<TensorSpec>,
    /// Outputs in catalogue order (their fill is the initial content).
    pub outputs: Vec<TensorSpec>,
    /// Among the large shapes (matmul 4096², attention over 4096 keys, ...).
    pub large: bool,
}

impl Case {
    /// The op kind.
    pub fn kind(&self) -> OpKind {
        self.op.kind()
    }

    /// Distinct dtypes of the case's tensors, for `--dtype` filters and reports.
    pub fn dtypes(&self) -> Vec<DType> {
        let mut d: Vec<DType> = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .map(|t| t.desc.dtype)
            .collect();
        d.sort();
        d.dedup();
        d
    }

    /// The descriptors of its inputs and outputs, as a backend sees them.
    pub fn descs(&self) -> (Vec<TensorDesc>, Vec<TensorDesc>) {
        let of = |specs: &[TensorSpec]| specs.iter().map(|t| t.desc.clone()).collect();
        (of(&self.inputs), of(&self.outputs))
    }

    /// Seed for this case's inputs.
    pub fn seed(&self, base: u64) -> u64 {
        hash_str(&self.id) ^ base
    }

    /// Input and output host tensors, seeded.
    pub fn materialize(&self, base_seed: u64) -> Result<(Vec<HostTensor>, Vec<HostTensor>)> {
        let mut rng = Rng::new(self.seed(base_seed));
        let mut inputs = self
            .inputs
            .iter()
            .map(|t| t.materialize(&mut rng))
            .collect::<Result<Vec<_>>>()?;
        crate::cases::experts::decidable_rows(self, &mut inputs, &mut rng)?;
        let outputs = self
            .outputs
            .iter()
            .map(|t| t.materialize(&mut rng))
            .collect::<Result<Vec<_>>>()?;
        Ok((inputs, outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_fit_their_storage() {
        for spec in [
            TensorSpec::padded(DType::F16, &[3, 5], 7, Fill::Uniform(1.0)),
            TensorSpec::padded(DType::Q8_0, &[3, 64], 32, Fill::Uniform(1.0)),
            TensorSpec::transposed(DType::Bf16, &[2, 3, 5], Fill::Uniform(1.0)),
            TensorSpec::padded(DType::F32, &[4, 2, 8], 8, Fill::Uniform(1.0)),
        ] {
            spec.desc.validate(spec.storage).unwrap();
            let t = spec.materialize(&mut Rng::new(3)).unwrap();
            assert!(!spec.desc.is_contiguous());
            assert_eq!(t.to_f32().len(), spec.desc.numel());
        }
    }

    #[test]
    fn fills_are_seeded_and_in_range() {
        let spec = TensorSpec::contiguous(DType::I32, &[100], Fill::Ids(7));
        let a = spec
            .materialize(&mut Rng::new(9))
            .unwrap()
            .to_i32()
            .unwrap();
        let b = spec
            .materialize(&mut Rng::new(9))
            .unwrap()
            .to_i32()
            .unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|v| (0..7).contains(v)));
        let v = TensorSpec::padded(DType::I32, &[1, 3], 2, Fill::Values(vec![4, 5, 6]));
        assert_eq!(
            v.materialize(&mut Rng::new(0)).unwrap().to_i32().unwrap(),
            vec![4, 5, 6]
        );
    }
}
