//! # glmhal-model
//!
//! The GLM graph executor, shared by every backend. Model math lives only in
//! the op catalogue; nothing here knows which device it runs on.
//!
//! - [`config`]: HF `glm`/`glm4`/`glm4_moe` and ChatGLM configs ([`moe`]: the experts' part);
//! - [`safetensors`] and [`checkpoint`]: memory-mapped checkpoints in either naming;
//! - [`gguf`], [`gguf_model`], [`kquants`], [`gguf_write`] and [`gguf_export`]:
//!   GGUF files (read in place, K-quants converted at load) and writing them;
//! - [`weights`]: weights on the device, converted once at load;
//! - [`graph`] and [`plan`]: the forward pass as catalogue ops over planned activations;
//! - [`kv_cache`] and [`executor`]: running steps on a backend;
//! - [`trace`]: a step node by node with every node's tensors read back;
//! - [`sampler`] and [`generate`]: decoding;
//! - [`tokenizer`] and [`chat`]: text in and out, GLM-4 and ChatGLM3 prompts;
//! - [`synth`]: random checkpoints with real models' shapes;
//! - [`npy`]: f32 NumPy arrays (logits, dumps).

pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod executor;
pub mod generate;
pub mod gguf;
pub mod gguf_export;
pub mod gguf_model;
pub mod gguf_write;
pub mod golden;
pub mod graph;
pub mod kquants;
pub mod kv_cache;
pub mod moe;
pub(crate) mod moe_graph;
pub(crate) mod moe_sources;
pub mod npy;
pub mod plan;
pub mod pretokenize;
pub mod progress;
pub mod safetensors;
pub mod sampler;
pub mod synth;
pub mod tokenizer;
pub mod trace;
pub mod traffic;
pub mod weight_source;
pub mod weights;

pub use config::{LayerOrder, ModelConfig, Naming};
pub use executor::{LoadOptions, Model, StepOutput, Workspace};
pub use generate::{generate, GenerateOptions, Generation};
pub use graph::{SeqStep, Want};
pub use progress::Progress;
pub use sampler::Sampling;
