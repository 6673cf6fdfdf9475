//! The `leafe-trainer` command line: parses, then hands each command to its
//! file in `commands/`, which calls the library.

mod args;
mod commands;

use clap::{Parser, Subcommand};
use commands::Ctx;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Distil LEAFE corrections into Qwen2/Llama models with candle: SFT,
/// generation, logits, and tiny models for tests.
#[derive(Parser)]
#[command(name = "leafe-trainer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// cpu, or cuda (needs a build with `--features cuda`).
    #[arg(long, global = true, value_enum, default_value = "cpu")]
    device: args::DeviceArg,
}

#[derive(Subcommand)]
enum Command {
    /// Create a tiny random model and a BPE tokenizer trained on a corpus.
    InitTiny(commands::init_tiny::InitTinyCmd),
    /// Supervised fine-tuning on chat JSONL ({"messages": [...]} or
    /// {"prompt": [...], "completion": [...]} per line), loss on assistant
    /// tokens only.
    ///
    /// Records may carry a "weight" (per assistant message: 0 = context; per
    /// record: scales its loss) and a "kind": the loss of a step is the sum
    /// over kinds of each kind's weighted mean token loss, so LEAFE data
    /// trains on L_cf + beta * L_reh whatever the sets' sizes.
    Sft(commands::sft::SftCmd),
    /// Generate a reply (chat) or a continuation (prompt).
    Generate(commands::generate::GenerateCmd),
    /// Serve the model over an OpenAI-compatible HTTP API
    /// (/v1/models, /v1/chat/completions; with --allow-reload, /v1/reload).
    Serve(commands::serve::ServeCmd),
    /// Measure training tokens/s, FLOP/s against the device's dense matmul
    /// peak at the same precision, and peak memory (CPU) against the memory
    /// guard's estimate; and generation speed with and without the KV cache.
    /// On random models.
    Bench(commands::bench::BenchCmd),
    /// Compute the trainer's ops (attention, the loss, RMSNorm, rotary
    /// embeddings, the gated MLP, three training steps in f32, bf16, f16 and with
    /// recomputed layers, batched decoding) on `--device cuda` and on the CPU
    /// from the same inputs, print the largest difference of each, and fail
    /// if one is beyond its tolerance: the first thing to run on a new GPU.
    CheckDevice(commands::check_device::CheckDeviceCmd),
    /// Convert a GGUF file (llama or qwen2; F32, F16, BF16, Q8_0, Q4_0,
    /// Q4_1, Q5_0, Q5_1 and the K-quants) into a Hugging Face checkpoint
    /// directory: config.json, model.safetensors, tokenizer.json,
    /// tokenizer_config.json (with the chat template), generation_config.json.
    ImportGguf(commands::import_gguf::ImportGgufCmd),
    /// Compare a checkpoint with a reference recorded from transformers by
    /// scripts/bench/parity.py: token ids, last-position logits, greedy tokens.
    CheckParity(commands::check_parity::CheckParityCmd),
    /// Print the last position's logits as JSON (for parity checks).
    Logits(commands::logits::LogitsCmd),
}

fn main() -> ExitCode {
    match dispatch(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let ctx = Ctx {
        device: cli.device.open()?,
        device_name: cli.device.name(),
        progress: std::io::stderr().is_terminal(),
    };
    match cli.command {
        Command::InitTiny(cmd) => cmd.execute(&ctx),
        Command::Sft(cmd) => cmd.execute(&ctx),
        Command::Generate(cmd) => cmd.execute(&ctx),
        Command::Serve(cmd) => cmd.execute(&ctx),
        Command::Bench(cmd) => cmd.execute(&ctx),
        Command::CheckDevice(cmd) => cmd.execute(&ctx),
        Command::ImportGguf(cmd) => cmd.execute(&ctx),
        Command::CheckParity(cmd) => cmd.execute(&ctx),
        Command::Logits(cmd) => cmd.execute(&ctx),
    }
}
