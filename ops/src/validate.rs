//! Shape and dtype checks for every op: the contract backends rely on.

use glmhal_hal::{DType, HalError, Op, OpContract, Result, TensorDesc};

/// Checks that `inputs` and `outputs` fit `op`: their number, ranks, shapes
/// and dtypes, and the op's parameters. Errors name the op and the mismatch.
///
/// What the catalogue states (how many tensors, each one's dtypes and
/// rank) is checked here from its [`crate::catalogue::OpSpec`]; the shape
/// relations and parameters each op family adds are checked below.
pub fn validate(op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Result<()> {
    let v = Checker { op: op.name() };
    let spec = crate::catalogue::spec_ref(op.kind());
    let expected_inputs = match op {
        Op::MatMul { bias: false } => spec.inputs.len() - 1,
        _ => spec.inputs.len(),
    };
    v.count("inputs", inputs.len(), expected_inputs)?;
    v.count("outputs", outputs.len(), spec.outputs.len())?;
    for (role, list) in [("input", inputs), ("output", outputs)] {
        for (i, t) in list.iter().enumerate() {
            v.well_formed(role, i, t)?;
        }
    }
    let declared = spec.inputs.iter().zip(inputs);
    for (arg, t) in declared.chain(spec.outputs.iter().zip(outputs)) {
        v.dtype(arg.name, t, &arg.dtypes)?;
        if let Some(rank) = arg.rank() {
            v.rank(arg.name, t, rank)?;
        }
    }
    let out = &outputs[0];
    match op {
        Op::GetRows => {
            let (table, ids) = (&inputs[0], &inputs[1]);
            v.shape("output", out, &[ids.shape[0], table.shape[1]])
        }
        Op::MatMul { bias } => mat_mul(&v, inputs, *bias, out),
        Op::BatchedMatMul => batched_mat_mul(&v, inputs, out),
        Op::RmsNorm { eps } | Op::LayerNorm { eps } => {
            let x = &inputs[0];
            v.positive("eps", *eps, true)?;
            for (arg, p) in spec.inputs[1..].iter().zip(&inputs[1..]) {
                v.shape(arg.name, p, &[x.last_dim()])?;
            }
            v.shape("output", out, &x.shape)
        }
        Op::Rope { rot, theta, .. } => rope(&v, inputs, (*rot, *theta), out),
        Op::Attention { scale, .. } => attention(&v, inputs, *scale, out),
        Op::Softmax { scale, causal } => {
            let x = &inputs[0];
            if *causal && x.shape[0] > x.shape[1] {
                return Err(HalError::shape(
                    v.op,
                    format!("causal softmax needs rows <= columns, got {:?}", x.shape),
                ));
            }
            v.finite("scale", *scale)?;
            v.shape("output", out, &x.shape)
        }
        Op::SwiGlu => {
            let x = &inputs[0];
            if !x.last_dim().is_multiple_of(2) {
                return Err(HalError::shape(
                    v.op,
                    format!(
                        "the fused gate/up dimension must be even, got {}",
                        x.last_dim()
                    ),
                ));
            }
            let mut shape = x.shape.clone();
            *shape.last_mut().unwrap_or(&mut 0) /= 2;
            v.shape("output", out, &shape)
        }
        Op::Scale { factor } => {
            v.finite("factor", *factor)?;
            v.shape("output", out, &inputs[0].shape)
        }
        Op::Silu | Op::Gelu | Op::Cast | Op::Quantize => v.shape("output", out, &inputs[0].shape),
        Op::Add | Op::Mul => broadcast(&v, inputs, out),
        Op::KvWrite => kv_write(&v, inputs, out),
        Op::Argmax => v.shape("output", out, &[inputs[0].shape[0]]),
        Op::MatMulId => mat_mul_id(&v, inputs, out),
        Op::MoeSelect {
            top_k,
            n_group,
            topk_group,
        } => moe_select(&v, inputs, (*top_k, *n_group, *topk_group), out),
        Op::MoeWeights { scale, .. } => {
            let (logits, ids) = (&inputs[0], &inputs[1]);
            v.finite("scale", *scale)?;
            if ids.shape[0] != logits.shape[0] || ids.shape[1] > logits.shape[1] {
                return Err(HalError::shape(
                    v.op,
                    format!(
                        "ids {:?} must have the rows of logits {:?} and at most its experts",
                        ids.shape, logits.shape
                    ),
                ));
            }
            v.shape("output", out, &ids.shape)
        }
    }
}

/// `out[T,k,N] = x[T,X,K]·w[E,N,K][ids[T,k]]ᵀ` with `X` = 1 or k.
fn mat_mul_id(v: &Checker, inputs: &[TensorDesc], out: &TensorDesc) -> Result<()> {
    let (x, w, ids) = (&inputs[0], &inputs[1], &inputs[2]);
    let (t, rows, k) = (x.shape[0], x.shape[1], x.shape[2]);
    let (e, n, wk) = (w.shape[0], w.shape[1], w.shape[2]);
    let chosen = ids.shape[1];
    if k != wk || ids.shape[0] != t || (rows != 1 && rows != chosen) || e == 0 {
        return Err(HalError::shape(
            v.op,
            format!(
                "x is [T,X,K]={:?}, w [E,N,K]={:?} and ids [T,k]={:?}: K and T must agree, X be 1 or k, E at least 1",
                x.shape, w.shape, ids.shape
            ),
        ));
    }
    v.shape("output", out, &[t, chosen, n])
}

/// The router's selection: `top_k` of `E` experts in `n_group` equal
/// groups of at least two (a group's score is its two best), `topk_group`
/// of them kept and holding at least `top_k` experts.
fn moe_select(
    v: &Checker,
    inputs: &[TensorDesc],
    (top_k, n_group, topk_group): (usize, usize, usize),
    out: &TensorDesc,
) -> Result<()> {
    let (logits, bias) = (&inputs[0], &inputs[1]);
    let e = logits.shape[1];
    v.shape("bias", bias, &[e])?;
    let per_group = e.checked_div(n_group).unwrap_or(0);
    let grouped_ok = n_group == 1 || (e % n_group == 0 && per_group >= 2);
    if n_group == 0
        || !grouped_ok
        || topk_group == 0
        || topk_group > n_group
        || top_k == 0
        || top_k > topk_group * per_group
    {
        return Err(HalError::invalid(
            v.op,
            format!(
                "top_k {top_k}, n_group {n_group}, topk_group {topk_group} do not fit {e} experts: \
                 groups must split them evenly, two or more each, and the kept groups hold at least top_k"
            ),
        ));
    }
    v.shape("output", out, &[logits.shape[0], top_k])
}

/// `y[M,N] = x[M,K]·w[N,K]ᵀ (+ bias[N])`.
fn mat_mul(v: &Checker, inputs: &[TensorDesc], bias: bool, out: &TensorDesc) -> Result<()> {
    let (x, w) = (&inputs[0], &inputs[1]);
    if x.shape[1] != w.shape[1] {
        return Err(HalError::shape(
            v.op,
            format!(
                "x is [M={}, K={}] but w is [N={}, K={}]",
                x.shape[0], x.shape[1], w.shape[0], w.shape[1]
            ),
        ));
    }
    if bias {
        v.shape("bias", &inputs[2], &[w.shape[0]])?;
    }
    v.shape("output", out, &[x.shape[0], w.shape[0]])
}

/// `out[B,M,N] = a[B,M,K]·b[B,K,N]`.
fn batched_mat_mul(v: &Checker, inputs: &[TensorDesc], out: &TensorDesc) -> Result<()> {
    let (a, b) = (&inputs[0], &inputs[1]);
    if a.shape[0] != b.shape[0] || a.shape[2] != b.shape[1] {
        return Err(HalError::shape(
            v.op,
            format!("a is [B,M,K]={:?} but b is [B,K,N]={:?}", a.shape, b.shape),
        ));
    }
    v.shape("output", out, &[a.shape[0], a.shape[1], b.shape[2]])
}

/// Rope over `x[T,heads,D]` at `positions[T]`: `rot` even and within the head.
fn rope(
    v: &Checker,
    inputs: &[TensorDesc],
    (rot, theta): (usize, f64),
    out: &TensorDesc,
) -> Result<()> {
    let (x, pos) = (&inputs[0], &inputs[1]);
    v.shape("positions", pos, &[x.shape[0]])?;
    let head_dim = x.shape[2];
    if rot == 0 || rot % 2 != 0 || rot > head_dim {
        return Err(HalError::shape(
            v.op,
            format!("rot must be even and in 2..={head_dim} (head_dim), got {rot}"),
        ));
    }
    v.positive("theta", theta, false)?;
    v.shape("output", out, &x.shape)
}

/// Grouped-query attention: k and v alike, head sizes equal, query heads a
/// multiple of KV heads, no more queries than cached keys.
fn attention(v: &Checker, inputs: &[TensorDesc], scale: f64, out: &TensorDesc) -> Result<()> {
    let (q, k, val) = (&inputs[0], &inputs[1], &inputs[2]);
    if k.shape != val.shape {
        return Err(HalError::shape(
            v.op,
            format!("k {:?} and v {:?} differ", k.shape, val.shape),
        ));
    }
    let (t, nh, d) = (q.shape[0], q.shape[1], q.shape[2]);
    let (s, nkv, dk) = (k.shape[0], k.shape[1], k.shape[2]);
    if d != dk {
        return Err(HalError::shape(
            v.op,
            format!("q head_dim {d} but k head_dim {dk}"),
        ));
    }
    if nh % nkv != 0 {
        return Err(HalError::shape(
            v.op,
            format!("{nh} query heads are not a multiple of {nkv} kv heads"),
        ));
    }
    if t > s {
        return Err(HalError::shape(
            v.op,
            format!(
                "{t} queries but only {s} cached keys (the cache must include the queries' own)"
            ),
        ));
    }
    v.finite("scale", scale)?;
    v.shape("output", out, &q.shape)
}

/// `a ∘ b` with `b` of the same rank, each dim equal to `a`'s or 1.
fn broadcast(v: &Checker, inputs: &[TensorDesc], out: &TensorDesc) -> Result<()> {
    let (a, b) = (&inputs[0], &inputs[1]);
    let fits = a.rank() == b.rank() && a.shape.iter().zip(&b.shape).all(|(x, y)| x == y || *y == 1);
    if !fits {
        return Err(HalError::shape(
            v.op,
            format!(
                "b {:?} does not broadcast to a {:?} (same rank, each dim equal or 1)",
                b.shape, a.shape
            ),
        ));
    }
    v.shape("output", out, &a.shape)
}

/// `rows[T,kv_heads,D]` into a cache `[C,kv_heads,D]` at `positions[T]`.
fn kv_write(v: &Checker, inputs: &[TensorDesc], cache: &TensorDesc) -> Result<()> {
    let (rows, pos) = (&inputs[0], &inputs[1]);
    v.shape("positions", pos, &[rows.shape[0]])?;
    if cache.shape[1..] != rows.shape[1..] {
        return Err(HalError::shape(
            v.op,
            format!(
                "rows {:?} do not match cache {:?} in [kv_heads, head_dim]",
                rows.shape, cache.shape
            ),
        ));
    }
    Ok(())
}

struct Checker {
    op: &'static str,
}

impl Checker {
    fn count(&self, what: &str, got: usize, want: usize) -> Result<()> {
        if got != want {
            return Err(HalError::shape(
                self.op,
                format!("expected {want} {what}, got {got}"),
            ));
        }
        Ok(())
    }

    fn dtype(&self, name: &str, t: &TensorDesc, allowed: &[DType]) -> Result<()> {
        if !allowed.contains(&t.dtype) {
            let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
            return Err(HalError::dtype(
                self.op,
                format!(
                    "{name} is {} but must be one of {}",
                    t.dtype,
                    names.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// Not empty, as many strides as dims, whole blocks per row.
    fn well_formed(&self, role: &str, i: usize, t: &TensorDesc) -> Result<()> {
        if t.shape.contains(&0) || t.shape.is_empty() {
            return Err(HalError::shape(
                self.op,
                format!("{role} {i} has zero size or no dimensions: {:?}", t.shape),
            ));
        }
        if t.shape.len() != t.strides.len() {
            return Err(HalError::shape(
                self.op,
                format!("{role} {i}: shape and strides differ in rank"),
            ));
        }
        if t.dtype.is_quantized() && !t.last_dim().is_multiple_of(t.dtype.block_elems()) {
            return Err(HalError::shape(
                self.op,
                format!(
                    "{role} {i} is {} but its rows have {} elements, not a multiple of 32",
                    t.dtype,
                    t.last_dim()
                ),
            ));
        }
        Ok(())
    }

    fn finite(&self, name: &str, x: f64) -> Result<()> {
        if !x.is_finite() {
            return Err(HalError::invalid(
                self.op,
                format!("{name} must be finite, got {x}"),
            ));
        }
        Ok(())
    }

    fn rank(&self, name: &str, t: &TensorDesc, rank: usize) -> Result<()> {
        if t.rank() != rank {
            return Err(HalError::shape(
                self.op,
                format!("{name} must have {rank} dims, got {:?}", t.shape),
            ));
        }
        Ok(())
    }

    fn shape(&self, name: &str, t: &TensorDesc, want: &[usize]) -> Result<()> {
        if t.shape.as_slice() != want {
            return Err(HalError::shape(
                self.op,
                format!("{name} must be {want:?}, got {:?}", t.shape),
            ));
        }
        Ok(())
    }

    fn positive(&self, name: &str, x: f64, zero_ok: bool) -> Result<()> {
        if !x.is_finite() || x < 0.0 || (!zero_ok && x == 0.0) {
            return Err(HalError::invalid(
                self.op,
                format!("{name} must be a positive number, got {x}"),
            ));
        }
        Ok(())
    }
}

/// The catalogue's rules as the HAL's [`OpContract`]: what every backend
/// hands back from `Backend::contract`, so `Backend::execute` and
/// `Backend::supports` check each call against them before the backend sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Catalogue;

/// The contract every backend is checked against.
pub static CONTRACT: Catalogue = Catalogue;

impl OpContract for Catalogue {
    fn validate(&self, op: &Op, inputs: &[TensorDesc], outputs: &[TensorDesc]) -> Result<()> {
        validate(op, inputs, outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glmhal_hal::{RopeMode, TensorDesc as D};

    fn c(dt: DType, s: &[usize]) -> D {
        D::contiguous(dt, s)
    }

    #[test]
    fn matmul_shapes_and_dtypes() {
        let op = Op::MatMul { bias: false };
        validate(
            &op,
            &[c(DType::F32, &[2, 64]), c(DType::Q4_0, &[3, 64])],
            &[c(DType::F32, &[2, 3])],
        )
        .unwrap();
        let e = validate(
            &op,
            &[c(DType::F32, &[2, 64]), c(DType::F32, &[3, 63])],
            &[c(DType::F32, &[2, 3])],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mat_mul") && e.contains("K=63"), "{e}");
        let e = validate(
            &op,
            &[c(DType::I32, &[2, 64]), c(DType::F32, &[3, 64])],
            &[c(DType::F32, &[2, 3])],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("dtype") && e.contains("x is i32"), "{e}");
        let e = validate(
            &op,
            &[c(DType::F32, &[2, 48]), c(DType::Q8_0, &[3, 48])],
            &[c(DType::F32, &[2, 3])],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("multiple of 32"), "{e}");
        let e = validate(
            &op,
            &[c(DType::F32, &[0, 64]), c(DType::F32, &[3, 64])],
            &[c(DType::F32, &[0, 3])],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("zero size"), "{e}");
        let with_bias = Op::MatMul { bias: true };
        let e = validate(
            &with_bias,
            &[c(DType::F32, &[2, 64]), c(DType::F32, &[3, 64])],
            &[c(DType::F32, &[2, 3])],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("expected 3 inputs"), "{e}");
    }

    #[test]
    fn attention_and_rope_rules() {
        let att = Op::Attention {
            scale: 0.1,
            causal: true,
        };
        let ok = [
            c(DType::F32, &[2, 4, 8]),
            c(DType::F16, &[5, 2, 8]),
            c(DType::F16, &[5, 2, 8]),
        ];
        validate(&att, &ok, &[c(DType::F32, &[2, 4, 8])]).unwrap();
        let bad = [
            c(DType::F32, &[2, 3, 8]),
            c(DType::F16, &[5, 2, 8]),
            c(DType::F16, &[5, 2, 8]),
        ];
        assert!(validate(&att, &bad, &[c(DType::F32, &[2, 3, 8])])
            .unwrap_err()
            .to_string()
            .contains("multiple"));
        let long = [
            c(DType::F32, &[6, 4, 8]),
            c(DType::F16, &[5, 2, 8]),
            c(DType::F16, &[5, 2, 8]),
        ];
        assert!(validate(&att, &long, &[c(DType::F32, &[6, 4, 8])]).is_err());
        let rope = Op::Rope {
            rot: 3,
            theta: 1e4,
            mode: RopeMode::Neox,
        };
        let e = validate(
            &rope,
            &[c(DType::F32, &[2, 1, 8]), c(DType::I32, &[2])],
            &[c(DType::F32, &[2, 1, 8])],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rot must be even"), "{e}");
    }

    #[test]
    fn broadcasting_rules() {
        validate(
            &Op::Add,
            &[c(DType::F32, &[3, 5]), c(DType::F16, &[1, 5])],
            &[c(DType::F32, &[3, 5])],
        )
        .unwrap();
        assert!(validate(
            &Op::Mul,
            &[c(DType::F32, &[3, 5]), c(DType::F32, &[5])],
            &[c(DType::F32, &[3, 5])]
        )
        .is_err());
        assert!(validate(
            &Op::Mul,
            &[c(DType::F32, &[3, 5]), c(DType::F32, &[3, 4])],
            &[c(DType::F32, &[3, 5])]
        )
        .is_err());
    }

    #[test]
    fn every_op_rejects_a_wrong_output_count() {
        for spec in crate::catalogue::catalogue() {
            let op = crate::catalogue::example_op(spec.kind);
            assert!(validate(&op, &[], &[]).is_err(), "{}", spec.name);
        }
    }
}
