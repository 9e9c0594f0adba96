//! Tokenizers against goldens from HF tokenizers and OpenAI's tiktoken
//! (made by scripts/make_tokenizer_goldens.py), CJK and special tokens included.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::PathBuf;

use glmhal_model::tokenizer::{TiktokenBpe, Tokenizer};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

fn golden() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join("golden.json")).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn hf_tokenizer_json_matches_hf_tokenizers() {
    let g = golden();
    let t = Tokenizer::from_hf_file(&dir().join("tokenizer.json")).unwrap();
    for (text, want) in g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(g["hf"].as_array().unwrap())
    {
        let text = text.as_str().unwrap();
        let got = t.encode(text).unwrap();
        assert_eq!(got, ids(want), "{text:?}");
        assert_eq!(t.decode(&got).unwrap(), text);
    }
    assert!(t.special("<|assistant|>").is_some());
}

#[test]
fn tiktoken_rank_file_matches_tiktoken() {
    let g = golden();
    let t = TiktokenBpe::from_file(&dir().join("tokenizer.model")).unwrap();
    for (text, want) in g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(g["tiktoken"].as_array().unwrap())
    {
        let text = text.as_str().unwrap();
        let got = t.encode(text, true).unwrap();
        assert_eq!(got, ids(want), "{text:?}");
        assert_eq!(t.decode(&got).unwrap(), text);
    }
}

#[test]
fn a_directory_with_only_a_rank_file_uses_tiktoken_and_bad_files_are_errors() {
    let tmp = std::env::temp_dir().join(format!("glmhal-tk-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(dir().join("tokenizer.model"), tmp.join("tokenizer.model")).unwrap();
    let t = Tokenizer::from_dir(&tmp).unwrap();
    assert!(matches!(t, Tokenizer::Tiktoken(_)));
    assert!(t.special("[gMASK]").is_some());
    std::fs::write(tmp.join("tokenizer.model"), "not base64!! 1\n").unwrap();
    assert!(Tokenizer::from_dir(&tmp)
        .err()
        .unwrap()
        .to_string()
        .contains("line 1"));
    std::fs::write(tmp.join("tokenizer.json"), "{").unwrap();
    assert!(Tokenizer::from_dir(&tmp)
        .err()
        .unwrap()
        .to_string()
        .contains("tokenizer.json"));
    std::fs::remove_dir_all(&tmp).ok();
}
