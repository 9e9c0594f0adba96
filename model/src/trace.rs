//! A step run node by node with every node's inputs and output read back:
//! what `glmhal diff` and `glmhal dump` compare between backends.

use std::collections::HashMap;

use glmhal_hal::{DType, HalError, HostTensor, Op, OpKind, Result, TensorRef};

use crate::executor::{Model, StepOutput, Workspace};
use crate::graph::{Graph, Operand, SeqStep, Storage, Want};
use crate::kv_cache::KvCache;
use crate::weights::DeviceWeights;

/// One node of a traced step, as the backend saw and left it.
pub struct TracedNode<'a> {
    /// Its place in the step's graph.
    pub index: usize,
    /// Its name: the weight it multiplies or normalizes with
    /// (`layers.3.qkv`), or its op and count within the layer (`layers.3.rope#1`).
    pub name: &'a str,
    /// The op.
    pub op: &'a Op,
    /// Its inputs, read just before it ran.
    pub inputs: &'a [HostTensor],
    /// What each input is (`weight layers.3.qkv.weight`, `node 17`, `k cache 3`, `step inputs`).
    pub sources: &'a [String],
    /// For ops that update their output in place (kv_write), the output before.
    pub output_before: Option<&'a HostTensor>,
    /// Its output, read just after it ran.
    pub output: &'a HostTensor,
}

impl Model {
    /// Runs one step like [`Model::step`], but node by node, waiting after
    /// each and handing `visit` its inputs and output on the host. Slow (every
    /// tensor crosses to the host); weights are read once per step.
    pub fn step_traced(
        &self,
        cache: &KvCache,
        seqs: &[SeqStep],
        tokens: &[u32],
        want: Want,
        visit: &mut dyn FnMut(&TracedNode<'_>) -> Result<()>,
    ) -> Result<StepOutput> {
        let mut ws = Workspace::default();
        self.begin_step(cache, &mut ws, seqs, tokens, want)?;
        let names = node_names(&ws.graph, &self.weights);
        let mut writers: HashMap<StorageKey, usize> = HashMap::new();
        let mut weights: HashMap<usize, HostTensor> = HashMap::new();
        for (index, node) in ws.graph.nodes.iter().enumerate() {
            let mut inputs = Vec::with_capacity(node.inputs.len());
            let mut sources = Vec::with_capacity(node.inputs.len());
            for o in &node.inputs {
                let host = match o.storage {
                    Storage::Weight(w) => match weights.get(&w) {
                        Some(t) => t.clone(),
                        None => {
                            let t = self.read(&self.view(&ws, cache, o)?)?;
                            weights.insert(w, t.clone());
                            t
                        }
                    },
                    _ => self.read(&self.view(&ws, cache, o)?)?,
                };
                inputs.push(host);
                sources.push(source_name(o, &writers, &names, &self.weights));
            }
            let out_view = self.view(&ws, cache, &node.output)?;
            let output_before = match node.op.kind() {
                OpKind::KvWrite => Some(self.read(&out_view)?),
                _ => None,
            };
            let in_views = node
                .inputs
                .iter()
                .map(|o| self.view(&ws, cache, o))
                .collect::<Result<Vec<_>>>()?;
            self.backend
                .execute(&node.op, &in_views, std::slice::from_ref(&out_view))?;
            self.backend.synchronize()?;
            let output = self.read(&out_view)?;
            if let Some(k) = StorageKey::of(node.output.storage) {
                writers.insert(k, index);
            }
            visit(&TracedNode {
                index,
                name: &names[index],
                op: &node.op,
                inputs: &inputs,
                sources: &sources,
                output_before: output_before.as_ref(),
                output: &output,
            })?;
        }
        let arena = ws
            .arena
            .as_ref()
            .ok_or_else(|| glmhal_hal::HalError::invalid("workspace", "not allocated"))?;
        let mut bytes = Vec::new();
        let mut out = StepOutput::Tokens(Vec::new());
        self.read_result(&ws.graph, &ws.plan, arena, &mut bytes, &mut out)?;
        Ok(out)
    }

    /// After a step whose logits hold a NaN or an infinity: runs it again
    /// node by node and returns the error to report, naming the first node
    /// whose output holds one and whether its inputs already did.
    pub(crate) fn non_finite_error(
        &self,
        cache: &KvCache,
        seqs: &[SeqStep],
        tokens: &[u32],
        want: Want,
    ) -> HalError {
        let positions = seqs
            .iter()
            .map(|s| format!("{}..{}", s.start, s.start + s.len))
            .collect::<Vec<_>>()
            .join(", ");
        let mut found: Option<String> = None;
        let traced = self.step_traced(cache, seqs, tokens, want, &mut |node| {
            // kv_write's output is the whole cache, rows not yet written
            // included; the rows it writes were checked as the output of
            // the node that made them.
            if node.op.kind() == OpKind::KvWrite {
                return Ok(());
            }
            let Some((element, value)) = first_non_finite(node.output) else {
                return Ok(());
            };
            let fed: Vec<&str> = node
                .inputs
                .iter()
                .zip(node.sources)
                .filter(|(t, _)| first_non_finite(t).is_some())
                .map(|(_, source)| source.as_str())
                .collect();
            let cause = if fed.is_empty() {
                "from finite inputs: the values overflowed f32 there".to_string()
            } else {
                format!("its input already held one ({})", fed.join(", "))
            };
            found = Some(format!(
                "`{}` ({}, node {} of the step at positions {positions}) is the first to \
                 produce a NaN or an infinity (element {element} of its output is {value}), {cause}",
                node.name,
                node.op.name(),
                node.index,
            ));
            // Stop here: the nodes after it see what it produced.
            Err(HalError::invalid("trace", "stopped at the first non-finite node"))
        });
        match (found, traced) {
            (Some(message), _) => HalError::invalid("non-finite values", message),
            (None, Err(e)) => HalError::invalid(
                "non-finite values",
                format!(
                    "the logits of the step at positions {positions} hold a NaN or an \
                     infinity; running it again node by node to find where failed: {e}"
                ),
            ),
            (None, Ok(_)) => HalError::invalid(
                "non-finite values",
                format!(
                    "the logits of the step at positions {positions} hold a NaN or an \
                     infinity, but the same step run node by node produced none: the \
                     backend's whole-step path and its op-by-op path disagree"
                ),
            ),
        }
    }

    /// Weight `name` (canonical: `lm_head`, `layers.0.qkv.weight`) as the
    /// backend holds it, on the host.
    pub fn read_weight(&self, name: &str) -> Result<HostTensor> {
        use crate::graph::WeightTable;
        let (i, desc) = self.weights.lookup(name).ok_or_else(|| {
            glmhal_hal::HalError::invalid("weight", format!("`{name}` is not loaded"))
        })?;
        self.read(&self.weights.buffer(i).view(desc))
    }

    /// A host copy of a view's bytes, its descriptor rebased onto them.
    fn read(&self, t: &TensorRef<'_>) -> Result<HostTensor> {
        let range = t.desc.byte_range();
        let mut bytes = vec![0u8; range.len()];
        self.backend.download(t.buffer, range.start, &mut bytes)?;
        let mut desc = t.desc.clone();
        desc.offset -= range.start;
        HostTensor::new(desc, bytes)
    }
}

/// The first element of a float tensor that is a NaN or an infinity, and its value.
fn first_non_finite(t: &HostTensor) -> Option<(usize, f64)> {
    if t.desc.dtype == DType::I32 {
        return None;
    }
    t.to_f64()
        .into_iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
}

/// Where an operand comes from: the node that last wrote its storage, or the
/// weight, cache or step inputs it is.
fn source_name(
    o: &Operand,
    writers: &HashMap<StorageKey, usize>,
    names: &[String],
    weights: &DeviceWeights,
) -> String {
    if let Some(&j) = StorageKey::of(o.storage).and_then(|k| writers.get(&k)) {
        return format!("node {j} {}", names[j]);
    }
    match o.storage {
        Storage::Weight(w) => format!("weight {}", weights.name_of(w).unwrap_or("?")),
        Storage::Act(a) => format!("activation {a}"),
        Storage::KCache(l) => format!("k cache {l}"),
        Storage::VCache(l) => format!("v cache {l}"),
        Storage::Io => "step inputs".to_string(),
    }
}

/// A storage nodes write.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum StorageKey {
    Act(usize),
    K(usize),
    V(usize),
}

impl StorageKey {
    fn of(storage: Storage) -> Option<StorageKey> {
        match storage {
            Storage::Act(a) => Some(StorageKey::Act(a)),
            Storage::KCache(l) => Some(StorageKey::K(l)),
            Storage::VCache(l) => Some(StorageKey::V(l)),
            _ => None,
        }
    }
}

/// A name for every node: the weight it uses, without `.weight`
/// (`layers.3.qkv`, `embed`, `lm_head`), or its op numbered within its layer
/// (`layers.3.rope#0`), the layer being that of the last weight seen.
pub fn node_names(graph: &Graph, weights: &DeviceWeights) -> Vec<String> {
    let mut layer = String::new();
    let mut counts: HashMap<(String, &'static str), usize> = HashMap::new();
    graph
        .nodes
        .iter()
        .map(|node| {
            let weight = node.inputs.iter().find_map(|o| match o.storage {
                Storage::Weight(w) => weights.name_of(w),
                _ => None,
            });
            if let Some(w) = weight {
                let base = w.strip_suffix(".weight").unwrap_or(w);
                if let Some(rest) = base.strip_prefix("layers.") {
                    let n = rest.split('.').next().unwrap_or("");
                    layer = format!("layers.{n}");
                } else {
                    layer.clear();
                }
                return base.to_string();
            }
            // The prompt's last rows, picked before the final norm.
            if node.op == Op::GetRows {
                return "last_rows".to_string();
            }
            let op = node.op.name();
            let count = counts.entry((layer.clone(), op)).or_insert(0);
            *count += 1;
            let prefix = if layer.is_empty() {
                String::new()
            } else {
                format!("{layer}.")
            };
            format!("{prefix}{op}#{}", *count - 1)
        })
        .collect()
}
