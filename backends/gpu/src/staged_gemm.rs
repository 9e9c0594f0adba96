//! Prefill products the vendor GEMM cannot take as they are: f32
//! activations with f16 or bf16 weights, and Q8_0/Q4_0 weights. The
//! activations are cast to the weights' format (f16 for quantized weights)
//! and quantized weights dequantized to f16 panels of rows, in a workspace
//! the backend allocates per product; each GEMM then runs on tensor (matrix)
//! cores with f32 accumulation, writing the output's own dtype. Both
//! operands are thereby rounded to that format: what
//! [`staged_precision`] declares. Decode-sized products stay on the matvec
//! kernel, which reads the weights at bandwidth.

use glmhal_hal::{Arithmetic, DType, Op, Precision, Result, TensorDesc};

use crate::blas::{plan_gemm, Gemm};
use crate::plan::{once, plan, Arg, Context, Launch, BLOCK, MATVEC_MAX_ROWS};

/// Bytes of one dequantized weight panel at most.
const PANEL_BYTES: usize = 64 << 20;

/// One step of a staged product, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// A kernel of the tree (a cast or a dequantization into the workspace).
    Launch(Launch),
    /// A vendor GEMM.
    Gemm(Gemm),
}

/// A staged product: its steps and the workspace they use. Tensor indices
/// past the output name workspace regions: [`StagedGemm::ACTIVATIONS`]
/// (the cast activations) and [`StagedGemm::PANEL`] (a dequantized panel),
/// counted from the output's index.
#[derive(Clone, Debug, PartialEq)]
pub struct StagedGemm {
    /// Casts, dequantizations and GEMMs, in order.
    pub steps: Vec<Step>,
    /// Workspace bytes: the cast activations, then one panel.
    pub workspace: usize,
    /// Byte offset of the panel in the workspace.
    pub panel_offset: usize,
    /// The format both operands are rounded to.
    pub inputs: DType,
}

impl StagedGemm {
    /// Offset from the output's tensor index of the cast activations.
    pub const ACTIVATIONS: usize = 1;
    /// Offset from the output's tensor index of the dequantized panel.
    pub const PANEL: usize = 2;
}

/// The format a product with these operands is staged in, when it is.
fn staged_format(op: &Op, ins: &[TensorDesc], out: &TensorDesc) -> Option<DType> {
    let (x, w) = (ins.first()?, ins.get(1)?);
    if !matches!(op, Op::MatMul { .. }) || x.rank() != 2 || x.shape[0] <= MATVEC_MAX_ROWS {
        return None;
    }
    let format = match w.dtype {
        DType::F16 | DType::Bf16 if x.dtype != w.dtype => w.dtype,
        DType::Q8_0 | DType::Q4_0 => DType::F16,
        _ => return None,
    };
    // The libraries write C in the inputs' format or in f32.
    (out.dtype == format || out.dtype == DType::F32).then_some(format)
}

/// What a staged product computes in: f32 accumulation of operands rounded
/// to the staging format, or `None` when `op` is not staged.
pub fn staged_precision(op: &Op, ins: &[TensorDesc], out: &TensorDesc) -> Option<Precision> {
    let format = staged_format(op, ins, out)?;
    Some(Precision {
        inputs_rounded_to: Arithmetic::of(format),
        weights_dequantized_to: Arithmetic::of(format).filter(|_| ins[1].dtype.is_quantized()),
        ..crate::plan::precision(op, ins, std::slice::from_ref(out))
    })
}

/// The staged plan of `op`, or `None` when it is not staged (or a GEMM
/// cannot describe its views). `context` gives the device's warp and
/// whether the weight is packed.
pub fn plan_staged(
    op: &Op,
    ins: &[TensorDesc],
    out: &TensorDesc,
    context: Context,
) -> Result<Option<StagedGemm>> {
    let Some(format) = staged_format(op, ins, out) else {
        return Ok(None);
    };
    let (x, w) = (&ins[0], &ins[1]);
    // A packed weight is read whole; any other view of it is refused by `plan`.
    if context.is_packed(1) && !crate::packed::packs(w) {
        return Ok(None);
    }
    let (m, k, n) = (x.shape[0], x.shape[1], w.shape[0]);
    let o = ins.len();
    let (acts, panel) = (o + StagedGemm::ACTIVATIONS, o + StagedGemm::PANEL);
    let cast_x = TensorDesc::contiguous(format, &[m, k]);
    let acts_bytes = format.bytes_for(m * k).div_ceil(256) * 256;
    let mut steps = Vec::new();
    // The activations cast into the workspace (a two-tensor plan: x, then
    // the cast), unless they already are in the format.
    let (acts, acts_desc) = if x.dtype == format {
        (0, x.clone())
    } else {
        let cast = plan(
            &Op::Cast,
            std::slice::from_ref(x),
            &cast_x,
            Context::warp(context.warp),
        )?;
        for mut launch in cast {
            retarget(&mut launch, &[0, acts]);
            steps.push(Step::Launch(launch));
        }
        (acts, cast_x)
    };
    let bias = matches!(op, Op::MatMul { bias: true });
    let mut gemm_ins = vec![acts_desc.clone(), w.clone()];
    if bias {
        gemm_ins.push(ins[2].clone());
    }
    if !w.dtype.is_quantized() {
        let Some(mut g) = plan_gemm(op, &gemm_ins, out) else {
            return Ok(None);
        };
        g.b.tensor = acts;
        g.c.tensor = o;
        steps.push(Step::Gemm(g));
        return Ok(Some(StagedGemm {
            steps,
            workspace: acts_bytes,
            panel_offset: acts_bytes,
            inputs: format,
        }));
    }
    let rows = (PANEL_BYTES / (2 * k).max(1)).clamp(1, n);
    let mut first = 0;
    while first < n {
        let count = rows.min(n - first);
        steps.push(Step::Launch(dequantize(w, first, count, panel, context)?));
        // The panel's GEMM writes output columns first..first + count.
        let y = out.narrowed(1, first, count)?;
        let w_panel = TensorDesc::contiguous(DType::F16, &[count, k]);
        let product = Op::MatMul { bias: false };
        let Some(mut g) = plan_gemm(&product, &[acts_desc.clone(), w_panel], &y) else {
            return Ok(None);
        };
        (g.a.tensor, g.b.tensor, g.c.tensor) = (panel, acts, o);
        if bias {
            // The output holds the bias (filled once, before the first panel).
            if first == 0 {
                let Some(whole) = plan_gemm(op, &gemm_ins, out) else {
                    return Ok(None);
                };
                g.bias_fill = whole.bias_fill;
            }
            g.beta = 1.0;
        }
        steps.push(Step::Gemm(g));
        first += count;
    }
    Ok(Some(StagedGemm {
        steps,
        workspace: acts_bytes + 2 * rows * k,
        panel_offset: acts_bytes,
        inputs: format,
    }))
}

/// Rows `first..first + count` of the quantized weight `w` (input 1) into
/// the f16 panel at tensor index `panel`.
fn dequantize(
    w: &TensorDesc,
    first: usize,
    count: usize,
    panel: usize,
    context: Context,
) -> Result<Launch> {
    let k = w.shape[1];
    let token = match (context.is_packed(1), w.dtype) {
        (true, DType::Q8_0) => "q8_0r",
        (true, _) => "q4_0r",
        (false, d) => d.name(),
    };
    let rows = w.narrowed(0, first, count)?;
    Ok(Launch {
        file: "convert.cu",
        entry: format!("dequantize_rows_{token}_f16"),
        grid: [
            ((count * k).div_ceil(BLOCK as usize)).clamp(1, 1 << 20) as u32,
            1,
            1,
        ],
        block: BLOCK,
        args: vec![
            Arg::Tensor(1),
            Arg::View(crate::plan::View::of(w, &w.shape)?),
            Arg::Tensor(panel),
            Arg::U32(first as u32),
            Arg::U32(count as u32),
            Arg::U32(k as u32),
        ],
        reads: once(&[rows]),
    })
}

/// Renames a launch's tensor indices: `map[i]` for index `i`.
fn retarget(launch: &mut Launch, map: &[usize]) {
    for a in &mut launch.args {
        if let Arg::Tensor(i) = a {
            *i = map[*i];
        }
    }
}

/// Bytes a GEMM reads: both operands once.
pub fn gemm_reads(g: &Gemm) -> u64 {
    let (m, n, k) = (g.m as u64, g.n as u64, g.k as u64);
    (m * k + k * n) * g.inputs.bytes_for(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(x: DType, w: DType, m: usize, n: usize, k: usize, packed: u8) -> Option<StagedGemm> {
        let ins = [
            TensorDesc::contiguous(x, &[m, k]),
            TensorDesc::contiguous(w, &[n, k]),
        ];
        let out = TensorDesc::contiguous(DType::F32, &[m, n]);
        let context = Context { warp: 32, packed };
        plan_staged(&Op::MatMul { bias: false }, &ins, &out, context)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn entries(s: &StagedGemm) -> Vec<String> {
        s.steps
            .iter()
            .map(|step| match step {
                Step::Launch(l) => l.entry.clone(),
                Step::Gemm(g) => format!("gemm {}->{}", g.inputs, g.output),
            })
            .collect()
    }

    #[test]
    fn f16_and_bf16_weights_cast_the_activations_then_run_one_gemm() {
        let s = staged(DType::F32, DType::F16, 128, 4096, 4096, 0).unwrap();
        assert_eq!(entries(&s), ["unary_f32_f16", "gemm f16->f32"]);
        let Step::Gemm(g) = &s.steps[1] else { panic!() };
        // The weight is read in place; the activations from the workspace.
        assert_eq!((g.a.tensor, g.b.tensor, g.c.tensor), (1, 3, 2));
        let s = staged(DType::F32, DType::Bf16, 128, 4096, 4096, 0).unwrap();
        assert_eq!(entries(&s), ["unary_f32_bf16", "gemm bf16->f32"]);
    }

    #[test]
    fn quantized_weights_are_dequantized_in_panels_each_with_its_gemm() {
        let s = staged(DType::F32, DType::Q8_0, 512, 4096, 4096, 0).unwrap();
        assert_eq!(
            entries(&s),
            ["unary_f32_f16", "dequantize_rows_q8_0_f16", "gemm f16->f32"]
        );
        // GLM-4's output projection: 151552 rows of 4096 in 64 MiB panels.
        let s = staged(DType::F32, DType::Q4_0, 512, 151_552, 4096, 2).unwrap();
        assert_eq!(s.steps.len(), 1 + 2 * 19);
        assert_eq!(entries(&s)[1], "dequantize_rows_q4_0r_f16");
        assert!(s.workspace <= 512 * 4096 * 2 + PANEL_BYTES);
        let Step::Gemm(last) = s.steps.last().unwrap() else {
            panic!()
        };
        assert_eq!(last.m as usize, 151_552 - 18 * 8192);
        assert_eq!(last.c.offset as usize, 18 * 8192 * 4);
    }

    #[test]
    fn decode_f32_weights_and_same_format_products_are_not_staged() {
        assert!(staged(DType::F32, DType::Q8_0, 8, 4096, 4096, 0).is_none());
        assert!(staged(DType::F32, DType::F32, 128, 64, 64, 0).is_none());
        assert!(staged(DType::F16, DType::F16, 128, 64, 64, 0).is_none());
    }
}
