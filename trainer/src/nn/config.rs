//! `config.json` of a Hugging Face checkpoint, for the two supported
//! architectures: Qwen2 (Qwen2, Qwen2.5) and Llama.

use anyhow::{Context, Result, bail};
use candle_core::DType;
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

/// The rotary base: top-level `rope_theta` (transformers 4) or
/// `rope_parameters.rope_theta` (transformers 5), with only the default
/// rotary type; scaled variants are refused rather than computed wrong.
fn rope_theta(v: &Value) -> Result<f64> {
    let top: Option<f64> = optional(v, "rope_theta", None)?;
    let mut nested: Option<f64> = None;
    for key in ["rope_parameters", "rope_scaling"] {
        let Some(params) = v.get(key).filter(|p| !p.is_null()) else {
            continue;
        };
        let obj = params
            .as_object()
            .with_context(|| format!("config.json: '{key}' is not an object"))?;
        let kind = obj
            .get("rope_type")
            .or_else(|| obj.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("default");
        if kind != "default" {
            bail!(
                "config.json: {key}.rope_type '{kind}' is not supported (supported: default); \
                 scaled rotary embeddings (linear, dynamic, llama3, yarn, ...) would be computed wrong"
            );
        }
        if let Some(theta) = obj.get("rope_theta") {
            nested = Some(
                serde_json::from_value(theta.clone())
                    .with_context(|| format!("config.json: bad '{key}.rope_theta'"))?,
            );
        }
    }
    match (top, nested) {
        (Some(a), Some(b)) if a != b => {
            bail!("config.json: rope_theta {a} contradicts rope_parameters.rope_theta {b}")
        }
        (Some(theta), _) | (None, Some(theta)) => Ok(theta),
        (None, None) => Ok(10_000.0),
    }
}

/// Fields that change the computation in ways this model does not
/// implement: each is an error naming the field, never a silent default.
fn refuse_unsupported(v: &Value, arch: Arch, heads: usize, hidden: usize) -> Result<()> {
    let truthy = |key: &str| v.get(key).is_some_and(|x| x.as_bool() == Some(true));
    if let Some(act) = v.get("hidden_act").and_then(|a| a.as_str())
        && act != "silu"
    {
        bail!("config.json: hidden_act '{act}' is not supported (supported: silu)");
    }
    if truthy("mlp_bias") {
        bail!("config.json: mlp_bias true is not supported");
    }
    if arch == Arch::Qwen2 && v.get("attention_bias").and_then(|b| b.as_bool()) == Some(false) {
        bail!(
            "config.json: attention_bias false is not supported for qwen2 (its q/k/v have biases)"
        );
    }
    if truthy("use_sliding_window") {
        bail!("config.json: use_sliding_window true is not supported (only full attention)");
    }
    if arch == Arch::Llama
        && let Some(w) = v.get("sliding_window").filter(|w| !w.is_null())
    {
        bail!("config.json: sliding_window {w} is not supported (only full attention)");
    }
    if let Some(types) = v.get("layer_types").and_then(|t| t.as_array())
        && let Some(other) = types.iter().find(|t| t.as_str() != Some("full_attention"))
    {
        bail!("config.json: layer_types has {other}; only full_attention is supported");
    }
    if let Some(hd) = v.get("head_dim").filter(|h| !h.is_null()) {
        let hd: usize =
            serde_json::from_value(hd.clone()).context("config.json: bad 'head_dim'")?;
        if heads > 0 && hd * heads != hidden {
            bail!(
                "config.json: head_dim {hd} differs from hidden_size / num_attention_heads ({hidden} / {heads}); not supported"
            );
        }
    }
    if let Some(f) = v.get("partial_rotary_factor").and_then(|f| f.as_f64())
        && f != 1.0
    {
        bail!("config.json: partial_rotary_factor {f} is not supported (only 1.0)");
    }
    for key in [
        "attn_logit_softcapping",
        "final_logit_softcapping",
        "logits_scaling",
        "embedding_multiplier",
        "residual_multiplier",
        "attention_multiplier",
    ] {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            bail!("config.json: {key} {x} is not supported");
        }
    }
    Ok(())
}

impl ModelConfig {
    /// Parse a `config.json` value, as transformers 4 or 5 writes it.
    pub fn from_json(v: &Value) -> Result<ModelConfig> {
        let arch_name = v
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .or_else(|| v.get("model_type").and_then(|m| m.as_str()))
            .context("config.json names no architecture (no 'architectures' or 'model_type')")?;
        let arch = Arch::parse(arch_name)?;
        let heads: usize = field(v, "num_attention_heads")?;
        let hidden: usize = field(v, "hidden_size")?;
        refuse_unsupported(v, arch, heads, hidden)?;
        let cfg = ModelConfig {
            arch,
            vocab_size: field(v, "vocab_size")?,
            hidden_size: hidden,
            intermediate_size: field(v, "intermediate_size")?,
            num_hidden_layers: field(v, "num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: optional(v, "num_key_value_heads", heads)?,
            max_position_embeddings: optional(v, "max_position_embeddings", 4096)?,
            rope_theta: rope_theta(v)?,
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
            "torch_dtype": torch_dtype(DType::F32),
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

/// transformers' name of a weights dtype (`torch_dtype` in config.json).
pub fn torch_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "float32",
    }
}
