//! `config.json` of a Hugging Face checkpoint, for the two supported
//! architectures: Qwen2 (Qwen2, Qwen2.5) and Llama.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::Path;

/// Which decoder family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Qwen2,
    Llama,
}

impl Arch {
    pub fn parse(name: &str) -> Result<Arch> {
        match name.to_ascii_lowercase().as_str() {
            "qwen2" | "qwen2forcausallm" => Ok(Arch::Qwen2),
            "llama" | "llamaforcausallm" => Ok(Arch::Llama),
            _ => bail!("unsupported architecture '{name}' (supported: qwen2, llama)"),
        }
    }
    fn class(self) -> &'static str {
        match self {
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Llama => "LlamaForCausalLM",
        }
    }
    fn model_type(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }
}

/// The model shape and the few settings the forward pass needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// Biases on the q/k/v projections (Qwen2: yes; Llama: `attention_bias`).
    pub attention_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

fn field<T: serde::de::DeserializeOwned>(v: &Value, key: &str) -> Result<T> {
    let x = v
        .get(key)
        .with_context(|| format!("config.json has no '{key}'"))?;
    serde_json::from_value(x.clone()).with_context(|| format!("config.json: bad '{key}'"))
}

fn optional<T: serde::de::DeserializeOwned>(v: &Value, key: &str, default: T) -> Result<T> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => {
            serde_json::from_value(x.clone()).with_context(|| format!("config.json: bad '{key}'"))
        }
    }
}

/// `eos_token_id` may be a number or a list (Llama 3); the first one counts.
fn token_id(v: &Value, key: &str) -> Option<u32> {
    match v.get(key)? {
        Value::Number(n) => n.as_u64().map(|n| n as u32),
        Value::Array(a) => a.first()?.as_u64().map(|n| n as u32),
        _ => None,
    }
}

impl ModelConfig {
    /// Parse a `config.json` value.
    pub fn from_json(v: &Value) -> Result<ModelConfig> {
        let arch_name = v
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .or_else(|| v.get("model_type").and_then(|m| m.as_str()))
            .context("config.json names no architecture (no 'architectures' or 'model_type')")?;
        let arch = Arch::parse(arch_name)?;
        let heads: usize = field(v, "num_attention_heads")?;
        let cfg = ModelConfig {
            arch,
            vocab_size: field(v, "vocab_size")?,
            hidden_size: field(v, "hidden_size")?,
            intermediate_size: field(v, "intermediate_size")?,
            num_hidden_layers: field(v, "num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: optional(v, "num_key_value_heads", heads)?,
            max_position_embeddings: optional(v, "max_position_embeddings", 4096)?,
            rope_theta: optional(v, "rope_theta", 10_000.0)?,
            rms_norm_eps: optional(v, "rms_norm_eps", 1e-6)?,
            tie_word_embeddings: optional(v, "tie_word_embeddings", false)?,
            attention_bias: match arch {
                Arch::Qwen2 => true,
                Arch::Llama => optional(v, "attention_bias", false)?,
            },
            bos_token_id: token_id(v, "bos_token_id"),
            eos_token_id: token_id(v, "eos_token_id"),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read `DIR/config.json`.
    pub fn load(dir: &Path) -> Result<ModelConfig> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        ModelConfig::from_json(&v).with_context(|| format!("{}", path.display()))
    }

    /// Shape rules the forward pass relies on.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
        ];
        for (name, value) in positive {
            if value == 0 {
                bail!("{name} must be positive");
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            bail!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size,
                self.num_attention_heads
            );
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            bail!("num_attention_heads must be a multiple of num_key_value_heads");
        }
        if !self.head_dim().is_multiple_of(2) {
            bail!("the head dimension must be even for rotary embeddings");
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Parameters in the model.
    pub fn parameter_count(&self) -> usize {
        let (h, i, v, l) = (
            self.hidden_size,
            self.intermediate_size,
            self.vocab_size,
            self.num_hidden_layers,
        );
        let kv = self.num_key_value_heads * self.head_dim();
        let bias = if self.attention_bias { h + 2 * kv } else { 0 };
        let layer = h * h * 2 + h * kv * 2 + bias + 3 * h * i + 2 * h;
        v * h * if self.tie_word_embeddings { 1 } else { 2 } + l * layer + h
    }

    /// The `config.json` transformers writes for this model.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "architectures": [self.arch.class()],
            "model_type": self.arch.model_type(),
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "max_position_embeddings": self.max_position_embeddings,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": "float32",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "use_cache": true,
        });
        if self.arch == Arch::Llama {
            v["attention_bias"] = json!(self.attention_bias);
            v["mlp_bias"] = json!(false);
        } else {
            v["use_sliding_window"] = json!(false);
        }
        v
    }
}
