//! Consecutive calls of a step that one launch runs together, so a decode
//! layer takes few launches: GLM-4's post-block norm, the residual add and
//! the next norm (`add_norm`); the gate/up product and SwiGLU
//! (`matvec_swiglu`); rope of q and k with k and v written into the cache
//! (`rope_kv`). A fused kernel computes every value the separate calls
//! compute, with the same arithmetic in the same order, and writes every
//! output they write, so fusing changes no byte of any tensor; a group
//! fuses only when none of its outputs overlaps another output or an input
//! from outside the group (the separate calls could run in place of each
//! other's dead operands; one kernel cannot).

use glmhal_hal::{DType, Op, OpCall, Result, RopeMode, TensorRef};
use smallvec::SmallVec;

use crate::plan::{matmul, norm, rope, Context, Launch};

/// Which fused kernel, with what it needs beyond the tensors.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// `add_norm_f32`: the two norms' epsilons, and whether the first norm runs.
    AddNorm {
        /// Epsilon of the post-block norm and of the next norm.
        eps: (f64, f64),
        /// Whether the post-block norm runs (GLM-4) or not (GLM).
        post: bool,
    },
    /// `matvec_swiglu_f32_<w>_f32`.
    MatvecSwiglu {
        /// The device and whether the weight is packed.
        context: Context,
    },
    /// `rope_kv_f32_<cache>`.
    RopeKv {
        /// Rotated dims per head.
        rot: usize,
        /// Rope base.
        theta: f64,
        /// Pair order.
        mode: RopeMode,
    },
}

/// A fused group: how many calls it takes, the tensors its launch names
/// (`Arg::Tensor(i)` is `tensors[i]`) and the kernel.
pub struct Fused<'a> {
    /// Calls of the step the launch replaces.
    pub calls: usize,
    /// The launch's tensors.
    pub tensors: SmallVec<[TensorRef<'a>; 8]>,
    /// The kernel.
    pub kernel: Kernel,
}

impl Fused<'_> {
    /// The launch of this group.
    pub fn plan(&self) -> Result<Launch> {
        let desc = |i: usize| self.tensors[i].desc.clone();
        match self.kernel {
            Kernel::AddNorm { eps, post } => norm::add_norm(&std::array::from_fn(desc), eps, post),
            Kernel::MatvecSwiglu { context } => {
                matmul::matvec_swiglu(&std::array::from_fn(desc), context)
            }
            Kernel::RopeKv { rot, theta, mode } => {
                rope::rope_kv(&std::array::from_fn(desc), rot, theta, mode)
            }
        }
    }
}

/// The fused group starting at `calls[0]`, if one matches. `packed` says
/// whether a tensor holds a packed weight.
/// `on_matvec` says whether a product would run on the matvec kernel (not
/// the vendor BLAS) on its own.
pub fn fuse<'a>(
    calls: &[OpCall<'a>],
    warp: u32,
    packed: &dyn Fn(&TensorRef<'_>) -> bool,
    on_matvec: &dyn Fn(&OpCall<'_>) -> bool,
) -> Option<Fused<'a>> {
    let found = match calls.first().map(|c| &c.op) {
        Some(Op::RmsNorm { .. }) => add_norm(calls, true),
        Some(Op::Add) => add_norm(calls, false),
        Some(Op::MatMul { bias: false }) if on_matvec(&calls[0]) => {
            matvec_swiglu(calls, warp, packed)
        }
        Some(Op::Rope { .. }) => rope_kv(calls),
        _ => None,
    };
    found.filter(|f| independent(&calls[..f.calls]))
}

/// No output of the group overlaps another output, or an input that does
/// not come from an earlier call of the group.
fn independent(group: &[OpCall<'_>]) -> bool {
    let outputs = || group.iter().flat_map(|c| &c.outputs);
    for (i, o) in outputs().enumerate() {
        if outputs().skip(i + 1).any(|p| o.overlaps(p)) {
            return false;
        }
    }
    group.iter().enumerate().all(|(i, call)| {
        call.inputs.iter().all(|input| {
            let internal = group[..i]
                .iter()
                .flat_map(|c| &c.outputs)
                .any(|o| o.is_same(input));
            internal || !outputs().any(|o| o.overlaps(input))
        })
    })
}

fn all_f32(ts: &[&TensorRef<'_>]) -> bool {
    ts.iter().all(|t| t.desc.dtype == DType::F32)
}

/// `[rms_norm(d, w_post) → p, add(x, p) → s, rms_norm(s, w_next) → h]`
/// (`post`), or `[add(x, d) → s, rms_norm(s, w_next) → h]`.
fn add_norm<'a>(calls: &[OpCall<'a>], post: bool) -> Option<Fused<'a>> {
    let n = if post { 3 } else { 2 };
    let group = calls.get(..n)?;
    let (first_add, eps_post) = match (&group[0].op, post) {
        (Op::RmsNorm { eps }, true) => (1, *eps),
        (Op::Add, false) => (0, 0.0),
        _ => return None,
    };
    let (add, last) = (&group[first_add], &group[first_add + 1]);
    let (Op::Add, Op::RmsNorm { eps: eps_next }) = (&add.op, &last.op) else {
        return None;
    };
    let s = &add.outputs[0];
    let [x, d] = match post {
        // The add takes the post-norm's output and the residual, in either order.
        true => {
            let p = &group[0].outputs[0];
            match (&add.inputs[0], &add.inputs[1]) {
                (a, b) if b.is_same(p) => [a.clone(), group[0].inputs[0].clone()],
                (a, b) if a.is_same(p) => [b.clone(), group[0].inputs[0].clone()],
                _ => return None,
            }
        }
        false => [add.inputs[0].clone(), add.inputs[1].clone()],
    };
    let (p, w_post) = match post {
        true => (group[0].outputs[0].clone(), group[0].inputs[1].clone()),
        false => (d.clone(), d.clone()),
    };
    let (w_next, h) = (&last.inputs[1], &last.outputs[0]);
    let same_rows = [&x, &d, &p, s, h]
        .iter()
        .all(|t| t.desc.rank() == 2 && t.desc.shape == d.desc.shape);
    if !last.inputs[0].is_same(s) || !same_rows || !all_f32(&[&x, &d, &p, s, h, &w_post, w_next]) {
        return None;
    }
    Some(Fused {
        calls: n,
        tensors: SmallVec::from_iter([d, w_post, p, x, s.clone(), w_next.clone(), h.clone()]),
        kernel: Kernel::AddNorm {
            eps: (eps_post, *eps_next),
            post,
        },
    })
}

/// `[mat_mul(x, w) → gate_up, swi_glu(gate_up) → a]` on the matvec kernel.
fn matvec_swiglu<'a>(
    calls: &[OpCall<'a>],
    warp: u32,
    packed: &dyn Fn(&TensorRef<'_>) -> bool,
) -> Option<Fused<'a>> {
    let [product, swiglu] = calls.get(..2)? else {
        return None;
    };
    let (x, w, gu) = (&product.inputs[0], &product.inputs[1], &product.outputs[0]);
    if swiglu.op != Op::SwiGlu
        || !swiglu.inputs[0].is_same(gu)
        || !matmul::uses_matvec(&x.desc, &w.desc)
        || !all_f32(&[x, gu, &swiglu.outputs[0]])
        || w.desc.shape[0] % 2 != 0
        || (packed(w) && !crate::packed::packs(&w.desc))
    {
        return None;
    }
    let context = Context {
        warp,
        packed: if packed(w) { 2 } else { 0 },
    };
    Some(Fused {
        calls: 2,
        tensors: SmallVec::from_iter([x.clone(), w.clone(), gu.clone(), swiglu.outputs[0].clone()]),
        kernel: Kernel::MatvecSwiglu { context },
    })
}

/// `[rope(q) → qr, rope(k) → kr, kv_write(kr) → k cache, kv_write(v) → v
/// cache]`, one sequence's rows, every call at the same positions.
fn rope_kv<'a>(calls: &[OpCall<'a>]) -> Option<Fused<'a>> {
    let [rq, rk, wk, wv] = calls.get(..4)? else {
        return None;
    };
    let Op::Rope { rot, theta, mode } = rq.op else {
        return None;
    };
    let pos = &rq.inputs[1];
    let (kr, v) = (&rk.outputs[0], &wv.inputs[0]);
    let matches = rk.op == rq.op
        && wk.op == Op::KvWrite
        && wv.op == Op::KvWrite
        && [&rk.inputs[1], &wk.inputs[1], &wv.inputs[1]]
            .iter()
            .all(|p| p.is_same(pos))
        && wk.inputs[0].is_same(kr)
        && v.desc.shape == kr.desc.shape
        && wk.outputs[0].desc.dtype == wv.outputs[0].desc.dtype
        && wk.outputs[0].desc.shape == wv.outputs[0].desc.shape
        && all_f32(&[&rq.inputs[0], &rq.outputs[0], &rk.inputs[0], kr, v]);
    if !matches {
        return None;
    }
    Some(Fused {
        calls: 4,
        tensors: SmallVec::from_iter([
            rq.inputs[0].clone(),
            rk.inputs[0].clone(),
            v.clone(),
            pos.clone(),
            rq.outputs[0].clone(),
            kr.clone(),
            wk.outputs[0].clone(),
            wv.outputs[0].clone(),
        ]),
        kernel: Kernel::RopeKv { rot, theta, mode },
    })
}
