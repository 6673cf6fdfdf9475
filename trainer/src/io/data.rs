//! SFT data: chat JSONL, one `{"messages": [{"role", "content"}, ...]}` per
//! line (the conversational format TRL and LLaMA-Factory read), or TRL's
//! prompt-completion form `{"prompt": [...], "completion": [...]}` where only
//! the completion is trained. Optional, as in OpenAI's fine-tuning format:
//! `"weight": 0` on an assistant message makes it context only; a record's
//! own `"weight"` scales its loss (below 0 only for policy-gradient data,
//! see [`crate::jobs::sft::SftConfig::allow_negative_weights`]), and its `"kind"` names the set it
//! belongs to: the loss is a mean per set (see [`crate::jobs::sft`]), which is how
//! `leafe-host export` mixes rehearsal (`reh`, weight beta) with
//! corrections (`cf`).

use crate::io::chat::{ChatTemplate, Example, Message, encode_conversation};
use crate::setting::check;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// What to do with a line that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnBadLine {
    /// Stop with an error naming the line.
    Stop,
    /// Report it and go on.
    Skip,
}

#[derive(serde::Deserialize)]
struct Line {
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    prompt: Option<Vec<Message>>,
    #[serde(default)]
    completion: Option<Vec<Message>>,
    #[serde(default)]
    weight: Option<f32>,
    #[serde(default)]
    kind: Option<String>,
}

impl Line {
    /// The conversation, with the prompt half of a prompt-completion record
    /// as context only.
    fn conversation(self) -> Result<Vec<Message>> {
        match (self.messages, self.prompt, self.completion) {
            (Some(messages), None, None) => Ok(messages),
            (None, Some(prompt), Some(completion)) => Ok(prompt
                .into_iter()
                .map(|m| Message {
                    weight: (m.role == "assistant").then_some(0),
                    ..m
                })
                .chain(completion)
                .collect()),
            _ => bail!(
                "a record holds either \"messages\" or both \"prompt\" and \"completion\" \
                 (lists of {{\"role\", \"content\"}})"
            ),
        }
    }
}

/// Tokenised examples and what was dropped or cut on the way.
pub struct Dataset {
    pub examples: Vec<Example>,
    /// The sets of records by `kind`, in order of first appearance (records
    /// without a kind form the set "").
    pub sets: Vec<String>,
    /// (line number, reason) of each skipped line.
    pub skipped: Vec<(usize, String)>,
    /// Examples cut to `max_len`, and the tokens cut from them.
    pub truncated: usize,
    pub truncated_tokens: usize,
}

impl Dataset {
    /// Tokens trained on, over all examples.
    pub fn trained_tokens(&self) -> usize {
        self.examples
            .iter()
            .map(|e| e.trained.iter().filter(|t| **t).count())
            .sum()
    }
}

/// Read and tokenise `path`.
pub fn load_chat_jsonl(
    path: &Path,
    template: &ChatTemplate,
    tokenizer: &tokenizers::Tokenizer,
    max_len: usize,
    on_bad: OnBadLine,
) -> Result<Dataset> {
    check(max_len >= 2, "max_len", "must be at least 2")?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut data = Dataset {
        examples: Vec::new(),
        sets: Vec::new(),
        skipped: Vec::new(),
        truncated: 0,
        truncated_tokens: 0,
    };
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let example = serde_json::from_str::<Line>(line)
            .map_err(anyhow::Error::from)
            .and_then(|l| {
                let weight = l.weight.unwrap_or(1.0);
                if !weight.is_finite() {
                    bail!("the record's weight must be a finite number, got {weight}");
                }
                let kind = l.kind.clone().unwrap_or_default();
                let mut e = encode_conversation(template, tokenizer, &l.conversation()?)?;
                e.weight = weight;
                e.set = match data.sets.iter().position(|k| *k == kind) {
                    Some(i) => i,
                    None => {
                        data.sets.push(kind);
                        data.sets.len() - 1
                    }
                };
                Ok(e)
            })
            .and_then(|mut e| {
                if e.ids.len() > max_len {
                    data.truncated += 1;
                    data.truncated_tokens += e.ids.len() - max_len;
                    e.ids.truncate(max_len);
                    e.trained.truncate(max_len);
                }
                // The first token is never a target.
                if !e.trained.iter().skip(1).any(|t| *t) {
                    bail!("no assistant token is left within --max-len {max_len}");
                }
                Ok(e)
            });
        match (example, on_bad) {
            (Ok(e), _) => data.examples.push(e),
            (Err(e), OnBadLine::Stop) => {
                bail!(
                    "{} line {number}: {e:#} (use --on-bad-line skip to skip such lines)",
                    path.display()
                )
            }
            (Err(e), OnBadLine::Skip) => data.skipped.push((number, format!("{e:#}"))),
        }
    }
    if data.examples.is_empty() {
        bail!("{} holds no usable conversation", path.display());
    }
    Ok(data)
}
