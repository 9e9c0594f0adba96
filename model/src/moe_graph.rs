//! A routed layer's feed-forward block as catalogue ops: the f32 router
//! product, `moe_select` and `moe_weights`, the chosen experts' gate, up
//! and down products (`mat_mul_id`, reading only those experts), their
//! outputs summed by weight in ascending expert order (as transformers
//! adds them), and the shared expert as an ordinary FFN.

use glmhal_hal::{DType, Op, TensorDesc};
use smallvec::smallvec;

use crate::graph::{reshape, Builder, Operand};
use crate::moe::Moe;

/// The routed FFN of layer `layer` on the normed `[n, h]` rows `hn`.
pub(crate) fn routed_ffn(
    g: &mut Builder<'_>,
    moe: &Moe,
    (n, h, layer): (usize, usize, usize),
    hn: Operand,
) -> Result<Operand, String> {
    let (e, k, fe, fs) = (moe.experts, moe.top_k, moe.expert_ffn, moe.shared_ffn());
    let logits = g.apply(
        Op::MatMul { bias: false },
        smallvec![hn.clone(), g.layer_weight(layer, "router.weight")?],
        &[n, e],
    );
    let ids = g.act(&[n, k]);
    let ids = Operand {
        storage: ids.storage,
        desc: TensorDesc::contiguous(DType::I32, &[n, k]),
    };
    g.push(
        Op::MoeSelect {
            top_k: k,
            n_group: moe.n_group,
            topk_group: moe.topk_group,
        },
        smallvec![logits.clone(), g.layer_weight(layer, "router.bias")?],
        ids.clone(),
    );
    let weights = g.apply(
        Op::MoeWeights {
            normalize: moe.normalize,
            scale: moe.scaling,
        },
        smallvec![logits, ids.clone()],
        &[n, k],
    );
    let rows = reshape(&hn, &[n, 1, h]);
    let expert = |g: &mut Builder<'_>, x: Operand, name: &str, width: usize| {
        let w = g.layer_weight(layer, name)?;
        Ok::<_, String>(g.apply(Op::MatMulId, smallvec![x, w, ids.clone()], &[n, k, width]))
    };
    let gate = expert(g, rows.clone(), "experts.gate.weight", fe)?;
    let up = expert(g, rows, "experts.up.weight", fe)?;
    let act = g.apply(Op::Silu, smallvec![gate], &[n, k, fe]);
    let act = g.apply(Op::Mul, smallvec![act, up], &[n, k, fe]);
    let down = expert(g, act, "experts.down.weight", h)?;
    // Σⱼ wⱼ·downⱼ for each token: [n, 1, k] · [n, k, h].
    let routed = g.apply(
        Op::BatchedMatMul,
        smallvec![reshape(&weights, &[n, 1, k]), down],
        &[n, 1, h],
    );
    let gu = g.apply(
        Op::MatMul { bias: false },
        smallvec![hn, g.layer_weight(layer, "shared.gate_up.weight")?],
        &[n, 2 * fs],
    );
    let shared_act = g.apply(Op::SwiGlu, smallvec![gu], &[n, fs]);
    let shared = g.apply(
        Op::MatMul { bias: false },
        smallvec![shared_act, g.layer_weight(layer, "shared.down.weight")?],
        &[n, h],
    );
    Ok(g.apply(
        Op::Add,
        smallvec![reshape(&routed, &[n, h]), shared],
        &[n, h],
    ))
}
