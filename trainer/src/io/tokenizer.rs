//! Tokenizers: load `tokenizer.json`, or train a byte-level BPE on a corpus
//! for tiny test models (nothing is ever downloaded).

use anyhow::{Context, Result, anyhow};
use std::path::Path;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

/// Special tokens of the ChatML format our tiny models use.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// Load `DIR/tokenizer.json`.
pub fn load(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    // Its syntax first, for a message that says where a broken file breaks.
    serde_json::from_str::<serde::de::IgnoredAny>(&text)
        .map_err(|e| anyhow!("{} is not valid JSON: {e}", path.display()))?;
    // tokenizers 0.23 panics on some sections of the wrong shape (a
    // `decoder` that is not an object of a known kind) instead of failing.
    let parsed = std::panic::catch_unwind(|| text.parse::<Tokenizer>());
    match parsed {
        Ok(tokenizer) => tokenizer.map_err(|e| anyhow!("cannot load {}: {e}", path.display())),
        Err(_) => Err(anyhow!(
            "cannot load {}: a section has the wrong shape (the tokenizers library gave up on it)",
            path.display()
        )),
    }
}

/// The ids of `text`, without adding special tokens (chat templates write
/// their own).
pub fn ids(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let enc = tokenizer
        .encode(text, false)
        .map_err(|e| anyhow!("cannot tokenise: {e}"))?;
    Ok(enc.get_ids().to_vec())
}

/// Train a byte-level BPE with `vocab_size` entries on the text files
/// `corpus`, with the ChatML special tokens, and save it as `DIR/tokenizer.json`.
pub fn train_bpe(corpus: &[&Path], vocab_size: usize, dir: &Path) -> Result<Tokenizer> {
    let out = dir.join("tokenizer.json");
    for file in corpus {
        std::fs::metadata(file)
            .with_context(|| format!("cannot read corpus {}", file.display()))?;
    }
    let specials = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect();
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(1)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    // As Qwen2's tokenizer.json: no prefix space, untrimmed offsets.
    let byte_level = ByteLevel::new(false, false, true);
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        tokenizers::NormalizerWrapper,
        ByteLevel,
        ByteLevel,
        ByteLevel,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(byte_level))
    .with_post_processor(Some(byte_level))
    .with_decoder(Some(byte_level))
    .build()
    .map_err(|e| anyhow!("cannot build the tokenizer: {e}"))?;
    let files = corpus.iter().map(|p| p.display().to_string()).collect();
    tokenizer
        .train_from_files(&mut trainer, files)
        .map_err(|e| anyhow!("cannot train the tokenizer: {e}"))?;
    tokenizer
        .save(&out, false)
        .map_err(|e| anyhow!("cannot save {}: {e}", out.display()))?;
    load(dir)
}
