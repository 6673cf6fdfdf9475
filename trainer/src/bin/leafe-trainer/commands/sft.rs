//! `leafe-trainer sft`.

use super::Ctx;
use crate::args::{F32OrBf16, Precision, flag_error};
use anyhow::Result;
use clap::Args;
use leafe_trainer::io::data::OnBadLine;
use leafe_trainer::jobs::sft::{KlPenalty, SftConfig, train};
use leafe_trainer::nn::lora::LoraConfig;
use std::path::PathBuf;

#[derive(Args)]
pub struct SftCmd {
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
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Precision,
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
    #[arg(long, value_enum, default_value = "f32")]
    save_dtype: F32OrBf16,
}

impl SftCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        let lora = match self.lora_rank {
            Some(rank) => Some(
                LoraConfig::new(rank, self.lora_alpha, &self.lora_targets).map_err(flag_error)?,
            ),
            None => None,
        };
        let cfg = SftConfig {
            epochs: self.epochs,
            max_steps: self.max_steps,
            batch_size: self.batch_size,
            grad_accum: self.grad_accum,
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            min_lr_ratio: 0.1,
            weight_decay: self.weight_decay,
            max_grad_norm: self.max_grad_norm,
            max_len: self.max_len,
            seed: self.seed,
            save_every: self.save_every,
            on_bad_line: self.on_bad_line,
            allow_negative_weights: self.allow_negative_weights,
            kl: self.kl_to.map(|reference| KlPenalty {
                reference,
                coef: self.kl_coef,
            }),
            lora,
            dtype: self.dtype.into(),
            grad_checkpoint: self.grad_checkpoint,
            save_dtype: self.save_dtype.into(),
            ..SftConfig::default()
        };
        let out = &self.out;
        let report = train(
            &self.model,
            &self.data,
            out,
            &cfg,
            &ctx.device,
            self.resume,
            ctx.progress,
        )
        .map_err(flag_error)?;
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
        Ok(())
    }
}
