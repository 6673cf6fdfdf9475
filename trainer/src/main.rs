//! The `leafe-trainer` command line.

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use clap::{Parser, Subcommand};
use leafe_trainer::chat::{ChatTemplate, Message};
use leafe_trainer::config::Arch;
use leafe_trainer::data::OnBadLine;
use leafe_trainer::generate::{GenerateConfig, generate};
use leafe_trainer::serve::ServeLimits;
use leafe_trainer::sft::{SftConfig, train};
use leafe_trainer::tiny::{TinySpec, init_tiny};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Distil LEAFE corrections into Qwen2/Llama models with candle: SFT,
/// generation, logits, and tiny models for tests.
#[derive(Parser)]
#[command(name = "leafe-trainer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create a tiny random model and a BPE tokenizer trained on a corpus.
    InitTiny {
        #[arg(long, value_parser = ["qwen2", "llama"], default_value = "qwen2")]
        arch: String,
        /// Text file the tokenizer is trained on.
        #[arg(long)]
        corpus: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = TinySpec::default().vocab_size)]
        vocab_size: usize,
        #[arg(long, default_value_t = TinySpec::default().hidden_size)]
        hidden_size: usize,
        #[arg(long, default_value_t = TinySpec::default().intermediate_size)]
        intermediate_size: usize,
        #[arg(long, default_value_t = TinySpec::default().layers)]
        layers: usize,
        #[arg(long, default_value_t = TinySpec::default().heads)]
        heads: usize,
        #[arg(long, default_value_t = TinySpec::default().kv_heads)]
        kv_heads: usize,
        #[arg(long, default_value_t = TinySpec::default().max_positions)]
        max_positions: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Supervised fine-tuning on chat JSONL ({"messages": [...]} or
    /// {"prompt": [...], "completion": [...]} per line), loss on assistant
    /// tokens only.
    ///
    /// Records may carry a "weight" (per assistant message: 0 = context; per
    /// record: scales its loss) and a "kind": the loss of a step is the sum
    /// over kinds of each kind's weighted mean token loss, so LEAFE data
    /// trains on L_cf + beta * L_reh whatever the sets' sizes.
    Sft {
        /// Checkpoint directory to start from (Hugging Face format).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = SftConfig::default().epochs)]
        epochs: usize,
        #[arg(long)]
        max_steps: Option<usize>,
        #[arg(long, default_value_t = SftConfig::default().batch_size)]
        batch_size: usize,
        #[arg(long, default_value_t = SftConfig::default().grad_accum)]
        grad_accum: usize,
        #[arg(long, default_value_t = SftConfig::default().lr)]
        lr: f64,
        #[arg(long, default_value_t = SftConfig::default().warmup_steps)]
        warmup_steps: usize,
        #[arg(long, default_value_t = SftConfig::default().weight_decay)]
        weight_decay: f64,
        /// Clip the global gradient norm (0: off).
        #[arg(long, default_value_t = SftConfig::default().max_grad_norm)]
        max_grad_norm: f64,
        /// Cut longer conversations (the count is reported).
        #[arg(long, default_value_t = SftConfig::default().max_len)]
        max_len: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Save a checkpoint (with optimizer state) every N steps.
        #[arg(long, default_value_t = 0)]
        save_every: usize,
        /// Continue from the latest checkpoint in --out.
        #[arg(long)]
        resume: bool,
        #[arg(long, value_enum, default_value = "stop")]
        on_bad_line: OnBadLine,
        /// Accept record weights below 0: policy-gradient data, whose weights
        /// are advantages (`leafe-host export --data grpo`); a negative weight
        /// makes its answer less likely.
        #[arg(long)]
        allow_negative_weights: bool,
        /// Penalise KL(model || this checkpoint) on the trained tokens (GRPO's
        /// pull towards the policy it started from; same tokenizer).
        #[arg(long, value_name = "DIR")]
        kl_to: Option<PathBuf>,
        /// The KL penalty's weight (with --kl-to).
        #[arg(long, default_value_t = 0.04, requires = "kl_to")]
        kl_coef: f64,
        /// Train a LoRA adapter of this rank instead of all weights (saved as a
        /// PEFT adapter in OUT/adapter and merged into OUT).
        #[arg(long)]
        lora_rank: Option<usize>,
        /// LoRA scaling numerator (the update is scaled by alpha / rank).
        #[arg(long, default_value_t = 16.0)]
        lora_alpha: f64,
        /// Projections to adapt.
        #[arg(long, value_delimiter = ',', default_value = "q_proj,v_proj")]
        lora_targets: Vec<String>,
        /// Precision of the forward and backward passes. bf16 is mixed
        /// precision as PyTorch's autocast does it: matmuls in bf16 over f32
        /// master weights; optimizer state, norms, softmax and loss in f32.
        /// f16 is the same with dynamic loss scaling (as PyTorch's
        /// GradScaler: a step whose gradients overflow is skipped and the
        /// scale halved; loss_log.jsonl records the scale and the skips).
        /// Checkpoints hold the f32 weights either way (see --save-dtype).
        #[arg(long, value_parser = ["f32", "bf16", "f16"], default_value = "f32")]
        dtype: String,
        /// Activation recomputation: keep only each layer's input for the
        /// backward pass and run the layer again there. Activations then take
        /// about 1/20 of the memory (one hidden-size vector per token and
        /// layer, plus one layer's worth), for up to a third more time per
        /// step (one more forward pass of the layers).
        #[arg(long)]
        grad_checkpoint: bool,
        /// Precision of the final model written to OUT (bf16 halves its size;
        /// config.json's torch_dtype says which). The checkpoints written
        /// along the way (--save-every) keep f32, so that --resume continues
        /// exactly; a LoRA adapter is saved in f32.
        #[arg(long, value_parser = ["f32", "bf16"], default_value = "f32")]
        save_dtype: String,
    },
    /// Generate a reply (chat) or a continuation (prompt).
    Generate {
        #[arg(long)]
        model: PathBuf,
        /// A user message, rendered with the chat template.
        #[arg(long, conflicts_with = "prompt")]
        chat: Option<String>,
        /// Raw text to continue.
        #[arg(long)]
        prompt: Option<String>,
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop before this text (repeatable).
        #[arg(long)]
        stop: Vec<String>,
    },
    /// Serve the model over an OpenAI-compatible HTTP API
    /// (/v1/models, /v1/chat/completions; with --allow-reload, /v1/reload).
    Serve {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// The model name clients use [default: the directory name].
        #[arg(long)]
        name: Option<String>,
        /// Requests generated at once, decoded together in one batch (each
        /// holds one KV cache).
        #[arg(long, default_value_t = ServeLimits::default().concurrency)]
        concurrency: usize,
        /// Requests that may wait for a slot; more are answered 503 with Retry-After.
        #[arg(long, default_value_t = ServeLimits::default().queue)]
        queue: usize,
        /// Prompt + completion tokens of one request (bounds each KV cache,
        /// whatever the model's max_position_embeddings says).
        #[arg(long, default_value_t = ServeLimits::default().max_context)]
        max_context: usize,
        /// Accept `POST /v1/reload {"model": "DIR"}`, which swaps in the
        /// weights of another checkpoint directory without a restart (for
        /// on-policy training loops such as GRPO). It reads paths on this
        /// machine: keep the server on loopback.
        #[arg(long)]
        allow_reload: bool,
    },
    /// Measure training tokens/s, FLOP/s against the device's dense matmul
    /// peak at the same precision, and peak memory (CPU) against the memory
    /// guard's estimate; and generation speed with and without the KV cache.
    /// On random models.
    Bench {
        /// tiny, 0.5b (a Qwen2-0.5B-shaped random model, ~8 GiB to train at 1 x 128), or both.
        #[arg(long, value_parser = ["tiny", "0.5b", "both"], default_value = "tiny")]
        size: String,
        /// Benchmark the shape of this checkpoint instead (its config.json;
        /// the weights are random, which does not change the speed).
        #[arg(long, conflicts_with = "size")]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Timed training steps (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Tokens generated for the generation benchmark.
        #[arg(long, default_value_t = 32)]
        gen_tokens: usize,
        /// Also decode this many sequences together, as `serve` does for that
        /// many concurrent requests (e.g. 1,8,32: tokens/s over all of them).
        #[arg(long, value_delimiter = ',')]
        gen_batches: Vec<usize>,
        /// Precision of the training step (bf16: mixed precision, as `sft --dtype bf16`).
        #[arg(long, value_parser = ["f32", "bf16"], default_value = "f32")]
        dtype: String,
        /// Recompute each layer's activations in the backward pass, as `sft
        /// --grad-checkpoint`.
        #[arg(long)]
        grad_checkpoint: bool,
        /// Also time each of the model's ops on its own at the step's shapes
        /// (forward and backward), times the number of calls in a step:
        /// where the step's time goes (the rest: residual sums, casts, the
        /// embedding, the optimizer; recomputation adds one more forward pass
        /// of the layer ops).
        #[arg(long)]
        ops: bool,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Compute the trainer's ops (attention, the loss, RMSNorm, rotary
    /// embeddings, the gated MLP, three training steps in f32, bf16, f16 and with
    /// recomputed layers, batched decoding) on `--device cuda` and on the CPU
    /// from the same inputs, print the largest difference of each, and fail
    /// if one is beyond its tolerance: the first thing to run on a new GPU.
    CheckDevice {
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Convert a GGUF file (llama or qwen2; F32, F16, BF16, Q8_0, Q4_0,
    /// Q4_1, Q5_0, Q5_1 and the K-quants) into a Hugging Face checkpoint
    /// directory: config.json, model.safetensors, tokenizer.json,
    /// tokenizer_config.json (with the chat template), generation_config.json.
    ImportGguf {
        /// The .gguf file.
        gguf: PathBuf,
        /// The new checkpoint directory (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// Precision of the written weights (quantized tensors are dequantized).
        #[arg(long, value_parser = ["f32", "bf16"], default_value = "f32")]
        dtype: String,
    },
    /// Compare a checkpoint with a reference recorded from transformers by
    /// scripts/parity.py: token ids, last-position logits, greedy tokens.
    CheckParity {
        #[arg(long)]
        model: PathBuf,
        /// The fixture JSON (e.g. trainer/tests/data/smollm2-parity.json).
        #[arg(long)]
        fixture: PathBuf,
        /// Largest allowed |logit difference| over the reference's top 50.
        #[arg(long, default_value_t = 1e-3)]
        tolerance: f32,
    },
    /// Print the last position's logits as JSON (for parity checks).
    Logits {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        text: String,
    },
}

fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
        "cuda" => {
            bail!("this leafe-trainer was built without CUDA: rebuild with `--features cuda`")
        }
        other => bail!("unknown device '{other}' (cpu or cuda)"),
    }
}

fn same(equal: bool) -> &'static str {
    if equal { "equal" } else { "DIFFER" }
}

fn main() -> ExitCode {
    match real_main(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let device = device(&cli.device)?;
    match cli.command {
        Command::InitTiny {
            arch,
            corpus,
            out,
            vocab_size,
            hidden_size,
            intermediate_size,
            layers,
            heads,
            kv_heads,
            max_positions,
            seed,
        } => {
            let spec = TinySpec {
                arch: Arch::parse(&arch)?,
                vocab_size,
                hidden_size,
                intermediate_size,
                layers,
                heads,
                kv_heads,
                max_positions,
                seed,
            };
            let cfg = init_tiny(&corpus, &out, &spec)?;
            println!(
                "wrote a {} model with {} parameters to {}",
                arch,
                cfg.parameter_count(),
                out.display()
            );
        }
        Command::Sft {
            model,
            data,
            out,
            epochs,
            max_steps,
            batch_size,
            grad_accum,
            lr,
            warmup_steps,
            weight_decay,
            max_grad_norm,
            max_len,
            seed,
            save_every,
            resume,
            on_bad_line,
            allow_negative_weights,
            kl_to,
            kl_coef,
            lora_rank,
            lora_alpha,
            lora_targets,
            dtype,
            grad_checkpoint,
            save_dtype,
        } => {
            let lora = match lora_rank {
                Some(rank) => Some(leafe_trainer::lora::LoraConfig::new(
                    rank,
                    lora_alpha,
                    &lora_targets,
                )?),
                None => None,
            };
            let cfg = SftConfig {
                epochs,
                max_steps,
                batch_size,
                grad_accum,
                lr,
                warmup_steps,
                min_lr_ratio: 0.1,
                weight_decay,
                max_grad_norm,
                max_len,
                seed,
                save_every,
                on_bad_line,
                allow_negative_weights,
                kl: kl_to.map(|reference| leafe_trainer::sft::KlPenalty {
                    reference,
                    coef: kl_coef,
                }),
                lora,
                dtype: dtype_arg(&dtype),
                grad_checkpoint,
                save_dtype: dtype_arg(&save_dtype),
                ..SftConfig::default()
            };
            let report = train(
                &model,
                &data,
                &out,
                &cfg,
                &device,
                resume,
                std::io::stderr().is_terminal(),
            )?;
            for (line, why) in &report.skipped_lines {
                eprintln!("skipped line {line}: {why}");
            }
            println!(
                "trained {} steps on {} conversations ({} truncated, {} tokens cut); final loss {:.4}; {:.0} tokens/s; wrote {}",
                report.steps,
                report.examples,
                report.truncated_examples,
                report.truncated_tokens,
                report.final_loss,
                report.tokens_per_s,
                out.display()
            );
            if report.overflowed_steps > 0 {
                println!(
                    "{} of the steps were skipped: their f16 gradients overflowed (the loss scale was halved each time; see loss_log.jsonl)",
                    report.overflowed_steps
                );
            }
        }
        Command::Generate {
            model,
            chat,
            prompt,
            max_tokens,
            temperature,
            top_p,
            seed,
            stop,
        } => {
            let (m, tokenizer) = leafe_trainer::checkpoint::load_for_inference(&model, &device)?;
            let text = match (chat, prompt) {
                (Some(user), _) => {
                    ChatTemplate::load(&model)?.render(&[Message::new("user", &user)], true)?
                }
                (None, Some(p)) => p,
                (None, None) => bail!("give --chat MESSAGE or --prompt TEXT"),
            };
            let ids = leafe_trainer::tokenizer::ids(&tokenizer, &text)?;
            let eos: Vec<u32> = m.cfg.eos_token_id.into_iter().collect();
            let cfg = GenerateConfig {
                max_tokens,
                temperature,
                top_p,
                seed,
                stop,
                no_cache: false,
                max_context: None,
            };
            let out = generate(&m, &tokenizer, &ids, &eos, &cfg)?;
            println!("{}", out.text);
        }
        Command::Serve {
            model,
            host,
            port,
            name,
            concurrency,
            queue,
            max_context,
            allow_reload,
        } => {
            if concurrency == 0 || max_context < 2 {
                bail!("--concurrency must be at least 1 and --max-context at least 2");
            }
            let limits = ServeLimits {
                concurrency,
                queue,
                max_context,
            };
            let (m, tokenizer) = leafe_trainer::checkpoint::load_for_inference(&model, &device)?;
            let template = ChatTemplate::load(&model)?;
            let name = name.unwrap_or_else(|| {
                model
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into())
            });
            let mut served = leafe_trainer::serve::Served::with_limits(
                name.clone(),
                m,
                tokenizer,
                template,
                limits,
            );
            if allow_reload {
                served = served.allowing_reload();
            }
            let state = std::sync::Arc::new(served);
            let runtime = leafe_trainer::serve::runtime(&limits)
                .context("cannot start the server runtime")?;
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                    .await
                    .with_context(|| format!("cannot listen on {host}:{port}"))?;
                eprintln!("serving '{name}' on http://{}/v1", listener.local_addr()?);
                leafe_trainer::serve::serve(listener, state).await
            })?;
        }
        Command::Bench {
            size,
            model,
            batch,
            seq,
            steps,
            gen_tokens,
            gen_batches,
            json,
            dtype,
            grad_checkpoint,
            ops,
        } => {
            use leafe_trainer::bench;
            if batch == 0 || seq == 0 {
                bail!("--batch and --seq must be at least 1");
            }
            let mut models = Vec::new();
            if let Some(dir) = &model {
                let name = dir
                    .file_name()
                    .map_or("model".into(), |n| n.to_string_lossy().into_owned());
                models.push((name, leafe_trainer::config::ModelConfig::load(dir)?));
            } else if size != "0.5b" {
                models.push(("tiny".into(), bench::tiny()));
            }
            if model.is_none() && size != "tiny" {
                models.push(("qwen2-0.5b-shape".into(), bench::qwen2_05b()));
            }
            let mut report = Vec::new();
            for (name, cfg) in models {
                let name = name.as_str();
                let step = leafe_trainer::memory::TrainingStep {
                    batch,
                    seq,
                    dtype: dtype_arg(&dtype),
                    recompute: grad_checkpoint,
                };
                let t = bench::train_step(name, &cfg, step, steps, &device)?;
                println!(
                    "{name}: {} params, {} train step {:.3}s, {:.0} tokens/s, {:.2} GFLOP/s = {:.0}% of the matmul peak ({:.2} GFLOP/s)",
                    t.parameters,
                    t.dtype,
                    t.step_s,
                    t.tokens_per_s,
                    t.step_flops_per_s / 1e9,
                    100.0 * t.fraction_of_matmul,
                    t.matmul_flops_per_s / 1e9
                );
                println!(
                    "{name}: step time split: forward {:.3}s, backward {:.3}s, optimizer {:.3}s",
                    t.forward_s, t.backward_s, t.optimizer_s
                );
                let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
                match t.peak_rss_bytes {
                    Some(peak) => println!(
                        "{name}: peak memory {:.2} GiB (the memory guard estimates {:.2} GiB)",
                        gib(peak),
                        gib(t.estimated_bytes)
                    ),
                    None => println!(
                        "{name}: the memory guard estimates {:.2} GiB (peak not measured on this device)",
                        gib(t.estimated_bytes)
                    ),
                }
                let breakdown = match ops {
                    true => bench::breakdown::op_times(&cfg, step, &device, 3)?,
                    false => Vec::new(),
                };
                for op in &breakdown {
                    println!(
                        "{name}: {}: {} x {:.2} ms = {:.1} ms per step ({:.0}% of the step)",
                        op.op,
                        op.calls,
                        op.each_s * 1e3,
                        op.per_step_s * 1e3,
                        100.0 * op.per_step_s / t.step_s
                    );
                }
                if !breakdown.is_empty() {
                    let rest = t.step_s - breakdown.iter().map(|o| o.per_step_s).sum::<f64>();
                    println!(
                        "{name}: everything else (residual sums, casts, embedding, optimizer): {:.1} ms per step",
                        rest * 1e3
                    );
                }
                let g = bench::generation(name, &cfg, 16, gen_tokens, &gen_batches, &device)?;
                println!(
                    "{name}: generation {:.1} tokens/s with KV cache, {:.1} without ({:.1}x)",
                    g.cached_tokens_per_s,
                    g.uncached_tokens_per_s,
                    g.cached_tokens_per_s / g.uncached_tokens_per_s
                );
                for (n, rate) in &g.batched_tokens_per_s {
                    println!("{name}: {n} sequences decoded together: {rate:.1} tokens/s");
                }
                report.push(serde_json::json!({ "train": t, "ops": breakdown, "generation": g }));
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        Command::CheckDevice { json } => {
            if device.is_cpu() {
                bail!("check-device compares a GPU with the CPU: pass --device cuda");
            }
            let checks = leafe_trainer::devicecheck::compare(&device)?;
            for c in &checks {
                println!(
                    "{} {}: max |diff| {:.2e} (tolerance {:.0e})",
                    if c.holds() { "ok  " } else { "FAIL" },
                    c.what,
                    c.max_abs_diff,
                    c.tolerance
                );
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&checks)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let failed = checks.iter().filter(|c| !c.holds()).count();
            if failed > 0 {
                bail!(
                    "{failed} of {} checks differ beyond their tolerance",
                    checks.len()
                );
            }
            println!("all {} checks agree", checks.len());
        }
        Command::ImportGguf { gguf, out, dtype } => {
            let done = leafe_trainer::gguf::import(&gguf, &out, dtype_arg(&dtype))?;
            let types: Vec<String> = done
                .tensor_types
                .iter()
                .map(|(t, n)| format!("{n} {t}"))
                .collect();
            println!(
                "imported a {:?} model ({} parameters, vocabulary {}, tensors: {}) to {}",
                done.config.arch,
                done.config.parameter_count(),
                done.config.vocab_size,
                types.join(", "),
                done.out.display()
            );
        }
        Command::CheckParity {
            model,
            fixture,
            tolerance,
        } => {
            use leafe_trainer::parity;
            let reference = parity::Fixture::load(&fixture)?;
            let report = parity::check(&model, &reference, &device)?;
            for (i, p) in report.prompts.iter().enumerate() {
                println!(
                    "prompt {i}: {} tokens, template {}, ids {}, max |logit diff| {:.2e}, argmax {}, greedy {}: {:?}",
                    p.prompt_tokens,
                    same(p.text_equal),
                    same(p.ids_equal),
                    p.max_abs_logit_diff,
                    same(p.argmax_equal),
                    same(p.greedy_equal),
                    p.greedy_text
                );
            }
            println!(
                "max |logit diff| {:.2e} against transformers {} on {}",
                report.max_abs_logit_diff, reference.transformers, cli.device
            );
            if !report.holds(tolerance) {
                bail!("the model does not match the reference (tolerance {tolerance:e})");
            }
            println!("PASS");
        }
        Command::Logits { model, text } => {
            let (m, tokenizer) = leafe_trainer::checkpoint::load_for_inference(&model, &device)?;
            let ids = leafe_trainer::tokenizer::ids(&tokenizer, &text)?;
            if ids.is_empty() {
                bail!("--text tokenises to nothing");
            }
            let last = leafe_trainer::parity::last_logits(&m, &ids, &device)?;
            println!(
                "{}",
                serde_json::to_string(&last).context("cannot print the logits")?
            );
        }
    }
    Ok(())
}

/// A `--dtype` value (clap has checked it is f32, bf16 or f16).
fn dtype_arg(name: &str) -> DType {
    match name {
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        _ => DType::F32,
    }
}
