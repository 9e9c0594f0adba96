//! Tokenizers: Hugging Face `tokenizer.json`, and GLM-4's tiktoken-style rank
//! file (`tokenizer.model`: lines of `base64(token) rank`).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use glmhal_hal::{HalError, Result};

/// GLM-4's special tokens, in id order from the end of the rank file (151329 in glm-4-9b-chat).
pub const GLM4_SPECIALS: [&str; 14] = [
    "<|endoftext|>",
    "[MASK]",
    "[gMASK]",
    "[sMASK]",
    "<sop>",
    "<eop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
];

pub use crate::pretokenize::GLM4_PATTERN;

/// Id of the first special token in a vocabulary of `vocab` entries: GLM-4's
/// own 151329 when it fits, else the last ids.
pub fn special_base(vocab: usize) -> usize {
    if vocab >= 151329 + GLM4_SPECIALS.len() {
        151329
    } else {
        vocab.saturating_sub(GLM4_SPECIALS.len())
    }
}

/// A tokenizer of either kind.
pub enum Tokenizer {
    /// `tokenizer.json`.
    Hf(Box<tokenizers::Tokenizer>),
    /// A tiktoken rank file with GLM-4's specials.
    Tiktoken(Box<TiktokenBpe>),
}

impl Tokenizer {
    /// Finds the tokenizer of a model: the one stored in a `.gguf` file, or
    /// in a directory `tokenizer.json`, else `tokenizer.model` (tiktoken).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if dir.is_file() && dir.extension().is_some_and(|e| e == "gguf") {
            let file = crate::gguf::GgufFile::open(dir)?;
            let json = crate::gguf_model::tokenizer_json(&file)?;
            return json
                .parse::<tokenizers::Tokenizer>()
                .map(|t| Tokenizer::Hf(Box::new(t)))
                .map_err(|e| {
                    HalError::invalid(
                        dir.display().to_string(),
                        format!("the stored tokenizer cannot be built: {e}"),
                    )
                });
        }
        let json = dir.join("tokenizer.json");
        if json.exists() {
            return Self::from_hf_file(&json);
        }
        let ranks = dir.join("tokenizer.model");
        if ranks.exists() {
            return Ok(Tokenizer::Tiktoken(Box::new(TiktokenBpe::from_file(
                &ranks,
            )?)));
        }
        Err(HalError::invalid(
            dir.display().to_string(),
            "no tokenizer.json or tokenizer.model; pass token ids with --tokens instead",
        ))
    }

    /// Reads a Hugging Face `tokenizer.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        tokenizers::Tokenizer::from_file(path)
            .map(|t| Tokenizer::Hf(Box::new(t)))
            .map_err(|e| {
                HalError::invalid(
                    path.display().to_string(),
                    format!("cannot read the tokenizer: {e}"),
                )
            })
    }

    /// Token ids of `text`; special tokens written in the text are recognized.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Hf(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| HalError::invalid("tokenizer", e.to_string())),
            Tokenizer::Tiktoken(t) => t.encode(text, true),
        }
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Tokenizer::Hf(t) => t
                .decode(ids, false)
                .map_err(|e| HalError::invalid("tokenizer", e.to_string())),
            Tokenizer::Tiktoken(t) => t.decode(ids),
        }
    }

    /// Bytes of text the longest token covers, at most (a token's spelling
    /// in the vocabulary is never shorter than the text it stands for).
    pub fn longest_token_bytes(&self) -> usize {
        match self {
            Tokenizer::Hf(t) => t.get_vocab(true).keys().map(String::len).max().unwrap_or(1),
            Tokenizer::Tiktoken(t) => t
                .decoder
                .values()
                .map(Vec::len)
                .chain(t.specials.keys().map(String::len))
                .max()
                .unwrap_or(1),
        }
    }

    /// Id of a special token such as `<|user|>`.
    pub fn special(&self, token: &str) -> Option<u32> {
        match self {
            Tokenizer::Hf(t) => t.token_to_id(token),
            Tokenizer::Tiktoken(t) => t.specials.get(token).copied(),
        }
    }
}

/// Byte-pair encoding over ranked byte strings, as tiktoken does it.
pub struct TiktokenBpe {
    ranks: HashMap<Vec<u8>, u32>,
    decoder: HashMap<u32, Vec<u8>>,
    specials: HashMap<String, u32>,
    pattern: fancy_regex::Regex,
}

impl TiktokenBpe {
    /// Reads a rank file; GLM-4's specials follow the last rank.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HalError::io(format!("reading {}", path.display()), e))?;
        let mut ranks = HashMap::new();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |m: &str| {
                HalError::invalid(format!("{} line {}", path.display(), n + 1), m.to_string())
            };
            let (b64, rank) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `base64 rank`"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad("invalid base64"))?;
            let rank: u32 = rank.trim().parse().map_err(|_| bad("invalid rank"))?;
            ranks.insert(bytes, rank);
        }
        let next = ranks.values().max().map_or(0, |m| m + 1);
        let specials = GLM4_SPECIALS
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), next + i as u32))
            .collect();
        Self::new(ranks, specials, GLM4_PATTERN)
    }

    /// A tokenizer from ranks, specials and a split pattern.
    pub fn new(
        ranks: HashMap<Vec<u8>, u32>,
        specials: HashMap<String, u32>,
        pattern: &str,
    ) -> Result<Self> {
        let pattern = fancy_regex::Regex::new(pattern)
            .map_err(|e| HalError::invalid("tokenizer pattern", e.to_string()))?;
        let decoder = ranks.iter().map(|(b, r)| (*r, b.clone())).collect();
        Ok(TiktokenBpe {
            ranks,
            decoder,
            specials,
            pattern,
        })
    }

    /// Encodes `text`; with `allow_special`, special token strings map to their ids.
    pub fn encode(&self, text: &str, allow_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let next_special = if allow_special {
                self.specials
                    .iter()
                    .filter_map(|(s, id)| rest.find(s.as_str()).map(|at| (at, s.len(), *id)))
                    .min_by_key(|(at, len, _)| (*at, std::cmp::Reverse(*len)))
            } else {
                None
            };
            let (plain, special) = match next_special {
                Some((at, len, id)) => (&rest[..at], Some((id, at + len))),
                None => (rest, None),
            };
            for m in self.pattern.find_iter(plain) {
                let piece = m
                    .map_err(|e| HalError::invalid("tokenizer", e.to_string()))?
                    .as_str()
                    .as_bytes();
                self.encode_piece(piece, &mut out)?;
            }
            match special {
                Some((id, end)) => {
                    out.push(id);
                    rest = &rest[end..];
                }
                None => break,
            }
        }
        Ok(out)
    }

    fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        if let Some(r) = self.ranks.get(piece) {
            out.push(*r);
            return Ok(());
        }
        // Part boundaries; repeatedly merge the adjacent pair of lowest rank.
        let mut bounds: Vec<usize> = (0..=piece.len()).collect();
        loop {
            let mut best: Option<(u32, usize)> = None;
            for i in 0..bounds.len().saturating_sub(2) {
                if let Some(&r) = self.ranks.get(&piece[bounds[i]..bounds[i + 2]]) {
                    if best.is_none_or(|(br, _)| r < br) {
                        best = Some((r, i));
                    }
                }
            }
            match best {
                Some((_, i)) => {
                    bounds.remove(i + 1);
                }
                None => break,
            }
        }
        for w in bounds.windows(2) {
            let part = &piece[w[0]..w[1]];
            let r = self.ranks.get(part).ok_or_else(|| {
                HalError::invalid(
                    "tokenizer",
                    format!(
                        "byte sequence {part:?} has no rank (the rank file lacks single bytes)"
                    ),
                )
            })?;
            out.push(*r);
        }
        Ok(())
    }

    /// Decodes ids (invalid UTF-8 is replaced); unknown ids are an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut bytes = Vec::new();
        for id in ids {
            if let Some(b) = self.decoder.get(id) {
                bytes.extend_from_slice(b);
            } else if let Some((s, _)) = self.specials.iter().find(|(_, v)| *v == id) {
                bytes.extend_from_slice(s.as_bytes());
            } else {
                return Err(HalError::invalid(
                    "tokenizer",
                    format!("token id {id} is not in the vocabulary"),
                ));
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// GPT-2's byte-to-character map used by byte-level BPE vocabularies.
pub fn byte_level_char(b: u8) -> char {
    let printable = |b: u8| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|x| !printable(*x)).count() as u32;
    char::from_u32(256 + n).unwrap_or('?')
}

/// A byte-level BPE `tokenizer.json` for synthetic checkpoints: the 256 bytes,
/// GLM-4's specials at [`special_base`], no merges.
pub fn synthetic_tokenizer_json(vocab: usize) -> String {
    let mut v = serde_json::Map::new();
    for b in 0..=255u8 {
        v.insert(byte_level_char(b).to_string(), serde_json::json!(b));
    }
    let base = special_base(vocab);
    // Specials are in the model vocabulary too, which pins their ids.
    for (i, s) in GLM4_SPECIALS.iter().enumerate() {
        v.insert(s.to_string(), serde_json::json!(base + i));
    }
    let added: Vec<serde_json::Value> = GLM4_SPECIALS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            serde_json::json!({"id": base + i, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let doc = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": v, "merges": []}
    });
    serde_json::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_map_is_a_bijection() {
        let chars: std::collections::HashSet<char> = (0..=255u8).map(byte_level_char).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!(byte_level_char(b'a'), 'a');
        assert_eq!(byte_level_char(b' '), 'Ġ');
    }

    #[test]
    fn synthetic_tokenizer_round_trips_text_and_specials() {
        let dir = std::env::temp_dir().join(format!("glmhal-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tokenizer.json"), synthetic_tokenizer_json(512)).unwrap();
        let t = Tokenizer::from_dir(&dir).unwrap();
        let text = "[gMASK]<sop><|user|>\nHello, 世界";
        let ids = t.encode(text).unwrap();
        assert_eq!(&ids[..3], &[500, 502, 505]);
        assert_eq!(t.decode(&ids).unwrap(), text);
        assert_eq!(t.special("<|assistant|>"), Some(506));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn tiktoken_merges_by_rank() {
        let mut ranks: HashMap<Vec<u8>, u32> = (0..=255u8).map(|b| (vec![b], b as u32)).collect();
        ranks.insert(b"ab".to_vec(), 256);
        ranks.insert(b"abc".to_vec(), 257);
        ranks.insert(b"bc".to_vec(), 258);
        let specials = [("<|user|>".to_string(), 300)].into_iter().collect();
        let t = TiktokenBpe::new(ranks, specials, GLM4_PATTERN).unwrap();
        assert_eq!(t.encode("abc", false).unwrap(), vec![257]);
        // x a b c b c -> x ab c b c -> x abc b c -> x abc bc
        assert_eq!(
            t.encode("xabcbc", false).unwrap(),
            vec![b'x' as u32, 257, 258]
        );
        assert_eq!(t.encode("a<|user|>b", true).unwrap(), vec![97, 300, 98]);
        assert_eq!(t.decode(&[257, 300]).unwrap(), "abc<|user|>");
        assert!(t.decode(&[9999]).is_err());
    }
}
