//! The fuzz targets' entry points on a corpus of truncated and corrupted
//! files derived from the fixtures: every input is an error or a valid parse,
//! never a panic or an out-of-bounds read.

#![allow(clippy::unwrap_used)] // a test that cannot set up should panic

use std::path::PathBuf;

use glmhal_hal::Rng;
use glmhal_model::safetensors::check_bytes;
use glmhal_model::ModelConfig;

fn fixture(name: &str, file: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
            .join(file),
    )
    .unwrap()
}

/// Truncations at every interesting length, byte flips, JSON-ish byte
/// substitutions and lying header lengths.
fn corpus(seed: &[u8], rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new(), seed[..seed.len().min(7)].to_vec()];
    for cut in [8, 9, 16, 64, seed.len() / 2, seed.len().saturating_sub(1)] {
        out.push(seed[..cut.min(seed.len())].to_vec());
    }
    for i in 0..n {
        let mut b = seed.to_vec();
        let at = rng.below(b.len());
        match i % 4 {
            0 => b[at] = rng.next_u64() as u8,
            1 => b[at] = b"0123456789-[]{},:\"eE."[rng.below(21)],
            2 => b.truncate(at),
            _ => {
                if b.len() >= 8 {
                    b[..8].copy_from_slice(&(rng.next_u64() % (1 << 40)).to_le_bytes());
                }
            }
        }
        out.push(b);
    }
    out
}

#[test]
fn corrupted_safetensors_never_panic() {
    let mut rng = Rng::new(1);
    let seed = fixture("glm-gqa2-tf4", "model.safetensors");
    assert!(check_bytes(&seed).is_ok());
    // Mutations land in the header most of the time: keep just the header and a little data.
    let header_len = u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let small = seed[..(8 + header_len + 64).min(seed.len())].to_vec();
    let mut errors = 0;
    for input in corpus(&small, &mut rng, 3000)
        .iter()
        .chain(corpus(&seed, &mut rng, 200).iter())
    {
        errors += usize::from(check_bytes(input).is_err());
    }
    assert!(
        errors > 1000,
        "the corpus should mostly be rejected, {errors} were"
    );
}

#[test]
fn every_truncation_and_header_byte_flip_of_a_safetensors_file_is_an_error_or_a_parse() {
    let seed = fixture("glm-gqa2-tf4", "model.safetensors");
    let header_end = 8 + u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let mut parsed = 0;
    for cut in 0..header_end + 16 {
        parsed += usize::from(check_bytes(&seed[..cut]).is_ok());
    }
    // Only the whole file parses; no truncation of its header does.
    assert_eq!(parsed, 0);
    for at in 0..header_end {
        let mut b = seed.clone();
        b[at] ^= 0xff;
        let _ = check_bytes(&b);
    }
}

#[test]
fn corrupted_configs_never_panic() {
    let mut rng = Rng::new(2);
    for name in ["glm-gqa2-tf4", "glm4-gqa4-tf5", "glm-mha-chatglm"] {
        let seed = fixture(name, "config.json");
        for input in corpus(&seed, &mut rng, 1500) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&input) {
                let _ = ModelConfig::from_json(&v);
            }
        }
    }
}
