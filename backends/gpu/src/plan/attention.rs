//! `attention`: every query head of a KV head in one block, so each key and
//! value row is read once per query and KV head; with few blocks (decode)
//! the keys are split into chunks across blocks and a combine launch
//! follows (flash-decoding); with many queries (prefill) each block takes
//! all keys its query sees. Views whose rows are not contiguous take the
//! kernel with one block per (token, head).

use glmhal_hal::{Result, TensorDesc};

use super::{bytes, dt, launch, row_grid, view, Arg, Launch};

/// Blocks (queries × KV heads × head chunks) from which the keys are not
/// split: the device is busy enough without, and no workspace is needed.
const ENOUGH_BLOCKS: usize = 256;
/// Floats of shared memory the split kernel gives the query heads of a block
/// and a tile of keys (`SPLIT_VALUES` in `attention.cu`).
const SPLIT_VALUES: usize = 2048;
/// Query heads one split block holds at most (`SPLIT_HEADS`).
const SPLIT_HEADS: usize = 32;
/// Keys per chunk: at least this many, more when the chunks would exceed [`MAX_SPLITS`].
const MIN_CHUNK: usize = 64;
/// Chunks the keys are split into at most.
const MAX_SPLITS: usize = 128;

/// Attention of `q` over the cached `k` and `v`.
pub(super) fn attention(
    scale: f64,
    causal: bool,
    ins: &[TensorDesc],
    out: &TensorDesc,
) -> Result<Vec<Launch>> {
    let (q, k) = (&ins[0], &ins[1]);
    let rows_contiguous = ins.iter().chain([out]).all(|d| d.strides[2] == 1);
    // The split kernel's grid takes the queries in z (at most 65535).
    if rows_contiguous && q.shape[0] <= 65535 {
        return split(scale, causal, ins, out);
    }
    Ok(vec![launch(
        "attention.cu",
        format!(
            "attention_{}_{}_{}",
            dt(q.dtype),
            dt(k.dtype),
            dt(out.dtype)
        ),
        row_grid(q.shape[0] * q.shape[1]),
        vec![
            Arg::Tensor(0),
            view(q)?,
            Arg::Tensor(1),
            view(k)?,
            Arg::Tensor(2),
            view(&ins[2])?,
            Arg::Tensor(ins.len()),
            view(out)?,
            Arg::U32(q.shape[0] as u32),
            Arg::U32(q.shape[1] as u32),
            Arg::U32(q.shape[2] as u32),
            Arg::U32(k.shape[0] as u32),
            Arg::U32(k.shape[1] as u32),
            Arg::F32(scale as f32),
            Arg::I32(i32::from(causal)),
        ],
        // Every (token, head) block walks the keys it sees and their values.
        bytes(q) + 2 * q.shape[1] as u64 * seen(causal, q, k) * kv_row(k),
    )])
}

/// The split kernel, and the combine kernel when the keys take several chunks.
fn split(scale: f64, causal: bool, ins: &[TensorDesc], out: &TensorDesc) -> Result<Vec<Launch>> {
    let (q, k, v) = (&ins[0], &ins[1], &ins[2]);
    let (tokens, heads, dim) = (q.shape[0], q.shape[1], q.shape[2]);
    let (keys, kv_heads) = (k.shape[0], k.shape[1]);
    let group = heads / kv_heads.max(1);
    let head_chunk = group.min(SPLIT_HEADS).min(SPLIT_VALUES / dim.max(1)).max(1);
    let head_chunks = group.div_ceil(head_chunk);
    let blocks = tokens * kv_heads * head_chunks;
    let chunk = if blocks >= ENOUGH_BLOCKS {
        keys.max(1)
    } else {
        MIN_CHUNK.max(keys.div_ceil(MAX_SPLITS))
    };
    let splits = keys.div_ceil(chunk).max(1);
    let direct = splits == 1;
    // Per (token, head, chunk): running maximum, sum, then dim weighted values.
    let workspace = (tokens * heads * splits * (dim + 2) * 4) as u64;
    let mut launches = vec![Launch {
        file: "attention.cu",
        entry: format!(
            "attention_split_{}_{}_{}",
            dt(q.dtype),
            dt(k.dtype),
            dt(out.dtype)
        ),
        grid: [
            (kv_heads * head_chunks) as u32,
            splits as u32,
            tokens as u32,
        ],
        block: super::BLOCK,
        args: vec![
            Arg::Tensor(0),
            view(q)?,
            Arg::Tensor(1),
            view(k)?,
            Arg::Tensor(2),
            view(v)?,
            Arg::Tensor(ins.len()),
            view(out)?,
            if direct {
                Arg::Tensor(ins.len())
            } else {
                Arg::Workspace(workspace)
            },
            Arg::U32(tokens as u32),
            Arg::U32(heads as u32),
            Arg::U32(dim as u32),
            Arg::U32(keys as u32),
            Arg::U32(kv_heads as u32),
            Arg::F32(scale as f32),
            Arg::I32(i32::from(causal)),
            Arg::U32(chunk as u32),
            Arg::U32(head_chunk as u32),
            Arg::I32(i32::from(direct)),
        ],
        // Each block of query heads reads its KV head's visible rows once.
        reads: bytes(q) + 2 * (kv_heads * head_chunks) as u64 * seen(causal, q, k) * kv_row(k),
    }];
    if !direct {
        launches.push(launch(
            "attention.cu",
            format!("attention_combine_{}", dt(out.dtype)),
            row_grid(tokens * heads),
            vec![
                Arg::Workspace(workspace),
                Arg::Tensor(ins.len()),
                view(out)?,
                Arg::U32(tokens as u32),
                Arg::U32(heads as u32),
                Arg::U32(dim as u32),
                Arg::U32(splits as u32),
            ],
            workspace,
        ));
    }
    Ok(launches)
}

/// Bytes of one key (or value) row of one KV head.
fn kv_row(k: &TensorDesc) -> u64 {
    k.dtype.bytes_for(k.shape[2]) as u64
}

/// Keys seen, summed over the queries.
fn seen(causal: bool, q: &TensorDesc, k: &TensorDesc) -> u64 {
    let (tokens, keys) = (q.shape[0] as u64, k.shape[0] as u64);
    if causal {
        (0..tokens).map(|t| keys - tokens + t + 1).sum()
    } else {
        keys * tokens
    }
}
