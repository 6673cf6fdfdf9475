//! `leafe-trainer import-gguf`: a GGUF file (llama.cpp's format) to a
//! Hugging Face checkpoint directory that this trainer and transformers
//! both load.
//!
//! The weights are dequantized with candle's GGUF reader, renamed to
//! transformers' names, and the Llama q/k rows are put back in the order
//! transformers expects (llama.cpp's converter permutes them for its rotary
//! layout). The tokenizer is rebuilt from the file's metadata
//! ([`tokenizer`]). Everything is written to a temporary directory beside
//! `--out` and renamed into place, so a failure leaves nothing half-written.

pub mod tokenizer;

use crate::io::chat::ChatTemplate;
use crate::nn::config::{Arch, ModelConfig};
use crate::nn::model::Model;
use crate::nn::params::param_specs;
use crate::nn::quant::Quantization;
use crate::setting::check;
use anyhow::{Context, Result, bail};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Architectures this importer (and the trainer) supports.
pub const SUPPORTED: &str = "llama, qwen2";

/// What the import wrote, for the report.
#[derive(Debug)]
pub struct Imported {
    pub config: ModelConfig,
    /// Tensors by GGUF type (e.g. "Q4_1" -> 210).
    pub tensor_types: Vec<(String, usize)>,
    pub out: PathBuf,
}

/// An opened GGUF file: its header and a reader for its tensor data.
pub struct GgufFile {
    pub content: Content,
    file: std::fs::File,
    path: PathBuf,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<GgufFile> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut magic = [0u8; 4];
        let read = file.read(&mut magic).unwrap_or(0);
        if read < 4 || &magic != b"GGUF" {
            bail!(
                "{} is not a GGUF file (it does not start with the bytes 'GGUF')",
                path.display()
            );
        }
        use std::io::Seek;
        file.rewind()?;
        let content = Content::read(&mut file).map_err(|e| {
            anyhow::anyhow!(
                "{}: the GGUF header cannot be read (truncated or corrupt): {e}",
                path.display()
            )
        })?;
        Ok(GgufFile {
            content,
            file,
            path: path.to_path_buf(),
        })
    }

    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    pub fn string(&self, key: &str) -> Result<Option<&str>> {
        match self.meta(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => bail!("GGUF metadata {key} is not a string: {other:?}"),
        }
    }

    pub fn uint(&self, key: &str) -> Result<Option<u64>> {
        let v = match self.meta(key) {
            None => return Ok(None),
            Some(v) => v,
        };
        let n = match v {
            Value::U8(x) => Some(*x as u64),
            Value::U16(x) => Some(*x as u64),
            Value::U32(x) => Some(*x as u64),
            Value::U64(x) => Some(*x),
            Value::I8(x) => u64::try_from(*x).ok(),
            Value::I16(x) => u64::try_from(*x).ok(),
            Value::I32(x) => u64::try_from(*x).ok(),
            Value::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        };
        n.map(Some)
            .with_context(|| format!("GGUF metadata {key} is not a non-negative integer: {v:?}"))
    }

    fn required_uint(&self, key: &str) -> Result<usize> {
        self.uint(key)?
            .map(|n| n as usize)
            .with_context(|| format!("GGUF metadata has no {key}"))
    }

    pub fn float(&self, key: &str) -> Result<Option<f64>> {
        match self.meta(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(*x as f64)),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(_) => Ok(self.uint(key)?.map(|n| n as f64)),
        }
    }

    pub fn strings(&self, key: &str) -> Result<Option<Vec<&str>>> {
        match self.meta(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.as_str()),
                    other => bail!("GGUF metadata {key} holds a non-string: {other:?}"),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => bail!("GGUF metadata {key} is not an array: {other:?}"),
        }
    }

    pub fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.meta(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::I32(x) => Ok(*x as i64),
                    Value::U32(x) => Ok(*x as i64),
                    Value::I8(x) => Ok(*x as i64),
                    Value::U8(x) => Ok(*x as i64),
                    Value::I64(x) => Ok(*x),
                    other => bail!("GGUF metadata {key} holds a non-integer: {other:?}"),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => bail!("GGUF metadata {key} is not an array: {other:?}"),
        }
    }

    /// The tensor `name`, dequantized to f32 on the CPU.
    fn tensor(&mut self, name: &str) -> Result<Tensor> {
        let q = self
            .content
            .tensor(&mut self.file, name, &Device::Cpu)
            .map_err(|e| anyhow::anyhow!("{}: tensor {name}: {e}", self.path.display()))?;
        Ok(q.dequantize(&Device::Cpu)?)
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn tensor_dims(&self, name: &str) -> Option<Vec<usize>> {
        self.content
            .tensor_infos
            .get(name)
            .map(|t| t.shape.dims().to_vec())
    }
}

/// The model config the GGUF metadata describes. Settings this trainer
/// cannot compute (rotary scaling, a head size other than hidden / heads)
/// are errors naming the key.
pub fn model_config(g: &GgufFile) -> Result<ModelConfig> {
    let name = g
        .string("general.architecture")?
        .context("GGUF metadata has no general.architecture")?;
    let arch = match name {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        other => bail!("unsupported architecture {other} (supported: {SUPPORTED})"),
    };
    let key = |k: &str| format!("{name}.{k}");
    let hidden = g.required_uint(&key("embedding_length"))?;
    let heads = g.required_uint(&key("attention.head_count"))?;
    let kv_heads = g
        .uint(&key("attention.head_count_kv"))?
        .map_or(heads, |n| n as usize);
    let embed = g
        .tensor_dims("token_embd.weight")
        .context("the GGUF file has no tensor token_embd.weight")?;
    let vocab = match embed.as_slice() {
        [v, h] if *h == hidden => *v,
        dims => bail!(
            "tensor token_embd.weight has shape {dims:?}, the metadata implies [vocab, {hidden}]"
        ),
    };
    if let Some(kind) = g.string(&key("rope.scaling.type"))?
        && kind != "none"
    {
        bail!(
            "GGUF metadata {}: rotary scaling '{kind}' is not supported (supported: none)",
            key("rope.scaling.type")
        );
    }
    if heads == 0 || !hidden.is_multiple_of(heads) {
        bail!("GGUF metadata: embedding_length {hidden} is not a multiple of head_count {heads}");
    }
    let head_dim = hidden / heads;
    for k in [
        "rope.dimension_count",
        "attention.key_length",
        "attention.value_length",
    ] {
        if let Some(n) = g.uint(&key(k))?
            && n as usize != head_dim
        {
            bail!(
                "GGUF metadata {} is {n}, but embedding_length / head_count is {head_dim}: not supported",
                key(k)
            );
        }
    }
    let cfg = ModelConfig {
        arch,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: g.required_uint(&key("feed_forward_length"))?,
        num_hidden_layers: g.required_uint(&key("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        max_position_embeddings: g.uint(&key("context_length"))?.map_or(4096, |n| n as usize),
        rope_theta: g.float(&key("rope.freq_base"))?.unwrap_or(10_000.0),
        rms_norm_eps: g
            .float(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-6),
        tie_word_embeddings: !g.has_tensor("output.weight"),
        attention_bias: match arch {
            Arch::Qwen2 => true,
            Arch::Llama => g.has_tensor("blk.0.attn_q.bias"),
        },
        bos_token_id: g.uint("tokenizer.ggml.bos_token_id")?.map(|n| n as u32),
        eos_token_id: g.uint("tokenizer.ggml.eos_token_id")?.map(|n| n as u32),
    };
    cfg.validate()
        .context("the GGUF metadata describes an invalid model")?;
    Ok(cfg)
}

/// The GGUF name of a transformers parameter name (llama.cpp's names:
/// `model.layers.3.self_attn.q_proj.weight` is `blk.3.attn_q.weight`).
pub fn gguf_name(hf: &str) -> Result<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(name) = fixed {
        return Ok(name.to_string());
    }
    let rest = hf
        .strip_prefix("model.layers.")
        .with_context(|| format!("no GGUF name for {hf}"))?;
    let (layer, part) = rest
        .split_once('.')
        .with_context(|| format!("no GGUF name for {hf}"))?;
    let (module, kind) = part
        .rsplit_once('.')
        .with_context(|| format!("no GGUF name for {hf}"))?;
    let short = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => bail!("no GGUF name for {hf}"),
    };
    Ok(format!("blk.{layer}.{short}.{kind}"))
}

/// Undo llama.cpp's q/k row permutation: its converter stores each head's
/// rows as `[head, half, 2]` (interleaved rotary pairs); transformers
/// wants `[head, 2, half]` (the two halves).
fn unpermute_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims[0];
    if !rows.is_multiple_of(heads * 2) {
        bail!("cannot undo the rotary permutation: {rows} rows over {heads} heads");
    }
    let half = rows / heads / 2;
    let cols: usize = dims[1..].iter().product();
    let out = t
        .reshape((heads, half, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?;
    Ok(out)
}

/// Every parameter of `cfg`, read from the GGUF file under transformers'
/// names, as `dtype`.
fn read_params(
    g: &mut GgufFile,
    cfg: &ModelConfig,
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for spec in param_specs(cfg) {
        let name = gguf_name(&spec.name)?;
        let dims = g.tensor_dims(&name).with_context(|| {
            format!(
                "the GGUF file has no tensor {name} (needed for {})",
                spec.name
            )
        })?;
        if dims != spec.shape {
            bail!(
                "tensor {name} has shape {dims:?}, the metadata implies {:?}",
                spec.shape
            );
        }
        let mut t = g.tensor(&name)?;
        if cfg.arch == Arch::Llama {
            if name.contains(".attn_q.") {
                t = unpermute_rows(&t, cfg.num_attention_heads)?;
            } else if name.contains(".attn_k.") {
                t = unpermute_rows(&t, cfg.num_key_value_heads)?;
            }
        }
        out.insert(spec.name, t.to_dtype(dtype)?);
    }
    Ok(out)
}

fn tensor_types(g: &GgufFile) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for info in g.content.tensor_infos.values() {
        *counts.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(v)?;
    bytes.push(b'\n');
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// A GGUF file's model for inference, without a checkpoint directory:
/// its weights dequantized and then stored as `quantization` says, its
/// tokenizer and chat template rebuilt from the metadata (as `import-gguf`
/// writes them).
pub fn load_for_inference(
    gguf: &Path,
    device: &Device,
    quantization: Quantization,
) -> Result<(Model, tokenizers::Tokenizer, ChatTemplate)> {
    let mut g = GgufFile::open(gguf)?;
    let cfg = model_config(&g)?;
    crate::nn::memory::check(
        crate::nn::memory::weights(&cfg),
        "loading this model (the f32 weights)",
    )?;
    let tok = tokenizer::build(&g, &cfg)?;
    let params = VarMap::new();
    {
        let mut data = params.data().lock().expect("a new var map is not poisoned");
        for (name, t) in read_params(&mut g, &cfg, DType::F32)? {
            data.insert(name, Var::from_tensor(&t.to_device(device)?)?);
        }
    }
    let model = Model::quantized(&cfg, &params, quantization)?;
    let tokenizer: tokenizers::Tokenizer = tok.tokenizer_json.to_string().parse().map_err(|e| {
        anyhow::anyhow!(
            "{}: the rebuilt tokenizer does not load: {e}",
            gguf.display()
        )
    })?;
    let template = ChatTemplate::from_config(&tok.tokenizer_config, None, gguf)?;
    Ok((model, tokenizer, template))
}

/// Write every file of the checkpoint into `dir`.
fn write_checkpoint(g: &mut GgufFile, cfg: &ModelConfig, dtype: DType, dir: &Path) -> Result<()> {
    let tok = tokenizer::build(g, cfg)?;
    let params = read_params(g, cfg, dtype)?;
    candle_core::safetensors::save(&params, dir.join("model.safetensors"))
        .context("cannot write model.safetensors")?;
    drop(params);
    let mut config = cfg.to_json();
    config["torch_dtype"] = serde_json::json!(crate::nn::config::torch_dtype(dtype));
    write_json(&dir.join("config.json"), &config)?;
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::json!({
            "bos_token_id": cfg.bos_token_id,
            "eos_token_id": cfg.eos_token_id,
            "pad_token_id": tok.pad_token_id,
            "do_sample": false,
        }),
    )?;
    write_json(&dir.join("tokenizer.json"), &tok.tokenizer_json)?;
    write_json(&dir.join("tokenizer_config.json"), &tok.tokenizer_config)?;
    Ok(())
}

/// Import `gguf` into a new checkpoint directory `out` (which must not
/// exist, or be empty).
pub fn import(gguf: &Path, out: &Path, dtype: DType) -> Result<Imported> {
    check(
        matches!(dtype, DType::F32 | DType::BF16),
        "dtype",
        "must be f32 or bf16",
    )?;
    if out.exists() {
        let empty = out.is_dir() && std::fs::read_dir(out)?.next().is_none();
        if !empty {
            bail!(
                "{} already exists and is not empty: remove it or choose another --out",
                out.display()
            );
        }
    }
    let mut g = GgufFile::open(gguf)?;
    let cfg = model_config(&g)?;
    crate::nn::memory::check(
        crate::nn::memory::weights(&cfg) * 2,
        "importing this model (the f32 weights, twice)",
    )?;
    let name = out
        .file_name()
        .with_context(|| format!("{} needs a directory name", out.display()))?
        .to_string_lossy()
        .into_owned();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".{name}.importing-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let written = write_checkpoint(&mut g, &cfg, dtype, &tmp).and_then(|()| {
        if out.exists() {
            std::fs::remove_dir(out)?;
        }
        std::fs::rename(&tmp, out)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), out.display()))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(Imported {
        config: cfg,
        tensor_types: tensor_types(&g),
        out: out.to_path_buf(),
    })
}
