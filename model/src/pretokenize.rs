//! GLM-4's pre-tokenizer: the pattern that splits text into pieces before
//! byte-pair merges, shared by the tiktoken tokenizer and the `tokenizer.json`
//! made from a GGUF file's vocabulary.

/// GLM-4's split pattern for the tiktoken tokenizer.
pub const GLM4_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
