//! The tokenizer of a GGUF file as a Hugging Face `tokenizer.json` and
//! `tokenizer_config.json`.
//!
//! GGUF keeps a byte-level BPE (`tokenizer.ggml.model = gpt2`) as its
//! tokens, merges and token types, and names the pre-tokenizer it was
//! trained with in `tokenizer.ggml.pre` (llama.cpp's names); each name maps
//! to the splitting rules that the original `tokenizer.json` had.

use super::GgufFile;
use crate::nn::config::ModelConfig;
use anyhow::{Context, Result, bail};
use candle_core::quantized::gguf_file::Value;
use serde_json::{Value as Json, json};

/// GPT-2's split, with one token per digit in front (StarCoder, SmolLM).
const DIGITS: &str = "digits";
/// Qwen2's split: one token per digit, letters with one leading mark.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split: numbers in groups of up to three digits.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Pre-tokenizer names (`tokenizer.ggml.pre`) this importer knows.
pub const SUPPORTED_PRE: &str = "default, gpt2, smollm, starcoder, qwen2, llama-bpe, llama3";

/// The files' contents.
pub struct Built {
    pub tokenizer_json: Json,
    pub tokenizer_config: Json,
    pub pad_token_id: Option<u32>,
}

fn byte_level(use_regex: bool) -> Json {
    json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex })
}

fn split(regex: &str) -> Json {
    json!({ "type": "Split", "pattern": { "Regex": regex }, "behavior": "Isolated", "invert": false })
}

fn pre_tokenizer(pre: &str) -> Result<Json> {
    let kind = match pre {
        "default" | "gpt2" => "gpt2",
        "smollm" | "starcoder" | "refact" => DIGITS,
        "qwen2" | "deepseek-r1-qwen" => "qwen2",
        "llama-bpe" | "llama3" => "llama3",
        other => bail!(
            "unsupported pre-tokenizer '{other}' in tokenizer.ggml.pre (supported: {SUPPORTED_PRE})"
        ),
    };
    Ok(match kind {
        "gpt2" => byte_level(true),
        DIGITS => json!({ "type": "Sequence", "pretokenizers": [
            { "type": "Digits", "individual_digits": true },
            byte_level(true),
        ]}),
        "qwen2" => {
            json!({ "type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level(false)] })
        }
        _ => {
            json!({ "type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level(false)] })
        }
    })
}

fn flag(g: &GgufFile, key: &str) -> Result<Option<bool>> {
    match g.meta(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => bail!("GGUF metadata {key} is not a boolean: {other:?}"),
    }
}

/// Build the tokenizer files from the GGUF metadata.
pub fn build(g: &GgufFile, cfg: &ModelConfig) -> Result<Built> {
    let model = g
        .string("tokenizer.ggml.model")?
        .context("GGUF metadata has no tokenizer.ggml.model (the file carries no tokenizer)")?;
    match model {
        "gpt2" => {}
        "llama" => bail!(
            "tokenizer.ggml.model 'llama' (a SentencePiece vocabulary) is not supported yet \
             (supported: gpt2, the byte-level BPE of SmolLM, Qwen2 and Llama 3)"
        ),
        other => bail!("unsupported tokenizer.ggml.model '{other}' (supported: gpt2)"),
    }
    let tokens = g
        .strings("tokenizer.ggml.tokens")?
        .context("GGUF metadata has no tokenizer.ggml.tokens")?;
    if tokens.len() != cfg.vocab_size {
        bail!(
            "tokenizer.ggml.tokens has {} entries, the embedding has {} rows",
            tokens.len(),
            cfg.vocab_size
        );
    }
    let merges = g
        .strings("tokenizer.ggml.merges")?
        .context("GGUF metadata has no tokenizer.ggml.merges (needed by a gpt2 tokenizer)")?;
    let types = g.ints("tokenizer.ggml.token_type")?;
    if let Some(t) = &types
        && t.len() != tokens.len()
    {
        bail!(
            "tokenizer.ggml.token_type has {} entries, tokenizer.ggml.tokens {}",
            t.len(),
            tokens.len()
        );
    }
    let pre = g.string("tokenizer.ggml.pre")?.unwrap_or("default");

    let mut vocab = serde_json::Map::new();
    for (id, token) in tokens.iter().enumerate() {
        if vocab.insert(token.to_string(), json!(id)).is_some() {
            bail!("tokenizer.ggml.tokens lists '{token}' twice");
        }
    }
    let merges: Vec<Json> = merges
        .iter()
        .map(|m| {
            let (a, b) = m
                .split_once(' ')
                .with_context(|| format!("tokenizer.ggml.merges: '{m}' is not two tokens"))?;
            Ok(json!([a, b]))
        })
        .collect::<Result<_>>()?;
    // llama.cpp's token types: 3 = control (special), 4 = user-defined.
    let added: Vec<Json> = types
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, t)| matches!(**t, 3 | 4))
        .map(|(id, t)| {
            json!({
                "id": id, "content": tokens[id], "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": *t == 4, "special": *t == 3,
            })
        })
        .collect();

    let id = |key: &str| -> Result<Option<u32>> {
        let Some(n) = g.uint(key)? else {
            return Ok(None);
        };
        if n as usize >= tokens.len() {
            bail!(
                "GGUF metadata {key} = {n} is past the vocabulary ({})",
                tokens.len()
            );
        }
        Ok(Some(n as u32))
    };
    let text = |id: Option<u32>| id.map(|i| tokens[i as usize].to_string());
    let bos = id("tokenizer.ggml.bos_token_id")?;
    let eos = id("tokenizer.ggml.eos_token_id")?;
    let unk = id("tokenizer.ggml.unknown_token_id")?;
    let pad = id("tokenizer.ggml.padding_token_id")?;
    let add_bos = flag(g, "tokenizer.ggml.add_bos_token")?.unwrap_or(false);
    let add_eos = flag(g, "tokenizer.ggml.add_eos_token")?.unwrap_or(false);

    let post_processor = match (add_bos, &bos) {
        (true, Some(b)) => {
            let bos_text = tokens[*b as usize];
            json!({
                "type": "TemplateProcessing",
                "single": [{ "SpecialToken": { "id": bos_text, "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } }],
                "pair": [{ "SpecialToken": { "id": bos_text, "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } },
                         { "SpecialToken": { "id": bos_text, "type_id": 1 } }, { "Sequence": { "id": "B", "type_id": 1 } }],
                "special_tokens": { bos_text: { "id": bos_text, "ids": [b], "tokens": [bos_text] } },
            })
        }
        _ => {
            json!({ "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true })
        }
    };
    let tokenizer_json = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(pre)?,
        "post_processor": post_processor,
        "decoder": { "type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true },
        "model": {
            "type": "BPE", "dropout": null, "unk_token": text(unk), "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges,
        },
    });
    let mut tokenizer_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "bos_token": text(bos),
        "eos_token": text(eos),
        "unk_token": text(unk),
        "pad_token": text(pad),
        "model_max_length": cfg.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(template) = g.string("tokenizer.chat_template")? {
        tokenizer_config["chat_template"] = json!(template);
    }
    // Check that what we wrote is a tokenizer the tokenizers crate loads.
    let bytes = serde_json::to_vec(&tokenizer_json)?;
    tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
        anyhow::anyhow!("the tokenizer built from the GGUF metadata is invalid: {e}")
    })?;
    Ok(Built {
        tokenizer_json,
        tokenizer_config,
        pad_token_id: pad,
    })
}
