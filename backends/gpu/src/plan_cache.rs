//! Launch plans kept per op and tensor descriptors, with their entry points
//! resolved, so a step that repeats (decode) neither plans, formats entry
//! names nor looks functions up again: the key is written into a buffer
//! the cache keeps, and a hit allocates nothing. Attention over a cache
//! that grew by a token has new descriptors and is planned again; the
//! cache forgets everything once it holds [`MAX_PLANS`].

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use glmhal_hal::{HalError, Op, Result, TensorDesc};

use crate::plan::Launch;

/// Plans kept at most.
const MAX_PLANS: usize = 4096;

/// One launch with its function resolved on this device.
#[derive(Debug)]
pub struct Resolved {
    /// The driver's function handle.
    pub function: usize,
    /// What to launch.
    pub launch: Launch,
}

/// The plans of one device.
#[derive(Default)]
pub struct PlanCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    plans: HashMap<Vec<u8>, Arc<[Resolved]>>,
    key: Vec<u8>,
}

/// Writes the key of `ops` over `descs` (with `extra` words: the warp, the
/// packed inputs) into `key`.
fn write_key(key: &mut Vec<u8>, ops: &[&Op], descs: &[&TensorDesc], extra: &[u64]) -> Result<()> {
    key.clear();
    for op in ops {
        // Debug keeps every parameter exactly (NaN, infinities and -0.0 apart).
        write!(key, "{op:?}").map_err(|e| HalError::invalid("gpu", format!("op key: {e}")))?;
    }
    for d in descs {
        key.extend_from_slice(d.dtype.name().as_bytes());
        key.push(d.shape.len() as u8);
        for x in d.shape.iter().chain(&d.strides).chain([&d.offset]) {
            key.extend_from_slice(&(*x as u64).to_le_bytes());
        }
        key.push(b';');
    }
    for x in extra {
        key.extend_from_slice(&x.to_le_bytes());
    }
    Ok(())
}

impl PlanCache {
    /// The plan of `ops` (one, or a fused group) over `descs` and `extra`,
    /// made by `plan` (each launch with its function) when it is not kept yet.
    pub fn get_or_plan(
        &self,
        ops: &[&Op],
        descs: &[&TensorDesc],
        extra: &[u64],
        plan: impl FnOnce() -> Result<Vec<Resolved>>,
    ) -> Result<Arc<[Resolved]>> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| HalError::backend("gpu", "plans", "plan cache poisoned"))?;
        let Inner { plans, key } = &mut *inner;
        write_key(key, ops, descs, extra)?;
        if let Some(found) = plans.get(key.as_slice()) {
            return Ok(found.clone());
        }
        let made: Arc<[Resolved]> = plan()?.into();
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(key.clone(), made.clone());
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(op: Op) -> Vec<u8> {
        let d = TensorDesc::contiguous(glmhal_hal::DType::F32, &[2, 3]);
        let mut k = Vec::new();
        write_key(&mut k, &[&op], &[&d, &d], &[32]).unwrap_or_else(|e| panic!("{e}"));
        k
    }

    #[test]
    fn every_parameter_value_has_its_own_key() {
        let factors = [0.5, -0.0, 0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        let keys: Vec<Vec<u8>> = factors
            .iter()
            .map(|&factor| key(Op::Scale { factor }))
            .collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(key(Op::Add), key(Op::Mul));
    }
}
