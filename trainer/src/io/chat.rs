//! Chat templates and the tokenisation of conversations for SFT.
//!
//! The template is the `chat_template` of `tokenizer_config.json`, rendered
//! with minijinja the way transformers renders it (`trim_blocks`,
//! `lstrip_blocks`, Python string methods, `raise_exception`).

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The ChatML template of Qwen2 instruct models.
pub const QWEN2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// The same ChatML with transformers' `{% generation %}` markers around
/// what an assistant turn trains on (its content and end of turn), so that
/// `return_assistant_tokens_mask` and TRL's `assistant_only_loss=True` see
/// the turns `leafe-trainer sft` trains. It renders exactly as
/// [`QWEN2_TEMPLATE`]; leafe writes it into the models it makes.
pub const TRAINABLE_CHATML_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}{% else %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// transformers' `{% generation %}` / `{% endgeneration %}` tags mark
/// assistant tokens and render nothing; minijinja does not know them, so
/// each becomes an empty expression with the same whitespace control.
fn without_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            break;
        };
        let inner = &tag[2..end];
        let (left, body) = match inner.strip_prefix('-') {
            Some(b) => ("-", b),
            None => ("", inner),
        };
        let (body, right) = match body.strip_suffix('-') {
            Some(b) => (b, "-"),
            None => (body, ""),
        };
        if matches!(body.trim(), "generation" | "endgeneration") {
            out.push_str(&format!("{{{{{left} '' {right}}}}}"));
        } else {
            out.push_str(&tag[..end + 2]);
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
    /// OpenAI's fine-tuning format: `0` on an assistant turn means it is
    /// context, not a target (e.g. earlier actions before a correction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            weight: None,
        }
    }
}

/// A chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos_token: String,
    eos_token: String,
}

fn token_text(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", without_generation_tags(source))
            .map_err(|e| anyhow!("bad chat template: {e}"))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// The template of a checkpoint: `chat_template` in
    /// `DIR/tokenizer_config.json`, or `DIR/chat_template.jinja` where
    /// transformers 5 keeps it (that file wins when both are there, as in
    /// transformers).
    pub fn load(dir: &Path) -> Result<ChatTemplate> {
        let path = dir.join("tokenizer_config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let jinja = dir.join("chat_template.jinja");
        let source = match jinja.exists() {
            true => Some(
                std::fs::read_to_string(&jinja)
                    .with_context(|| format!("cannot read {}", jinja.display()))?,
            ),
            false => None,
        };
        ChatTemplate::from_config(&v, source, &path)
    }

    /// The template a `tokenizer_config.json` value (read from `path`)
    /// holds, or `jinja` when given.
    pub fn from_config(
        v: &serde_json::Value,
        jinja: Option<String>,
        path: &Path,
    ) -> Result<ChatTemplate> {
        let source = if let Some(jinja) = jinja {
            jinja
        } else {
            match v.get("chat_template") {
                Some(serde_json::Value::String(s)) => s.clone(),
                // A list of named templates: take "default".
                Some(serde_json::Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str())
                    .map(str::to_string)
                    .with_context(|| format!("{}: no 'default' chat template", path.display()))?,
                _ => bail!(
                    "{} has no chat_template (and there is no chat_template.jinja beside it)",
                    path.display()
                ),
            }
        };
        ChatTemplate::new(
            &source,
            &token_text(v.get("bos_token")),
            &token_text(v.get("eos_token")),
        )
    }

    /// Render `messages`; with `add_generation_prompt`, end with the opening
    /// of an assistant turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &serde_json::Map::new())
    }

    /// [`ChatTemplate::render`] with extra template variables, as
    /// transformers' `apply_chat_template(..., **kwargs)` (e.g. Qwen3's
    /// `enable_thinking`).
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let template = self.env.get_template("chat").map_err(|e| anyhow!("{e}"))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
                ..minijinja::Value::from_serialize(extra)
            })
            .map_err(|e| anyhow!("cannot render the chat template: {e}"))
    }

    /// The rendered conversation and the byte spans of the assistant turns
    /// (each turn's content and end-of-turn marker, as the template writes them).
    pub fn render_with_spans(
        &self,
        messages: &[Message],
    ) -> Result<(String, Vec<std::ops::Range<usize>>)> {
        let full = self.render(messages, false)?;
        let mut spans = Vec::new();
        for (i, m) in messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == "assistant")
        {
            let prefix = self.render(&messages[..i], true)?;
            let through = self.render(&messages[..=i], false)?;
            if !full.starts_with(&through) || !through.starts_with(&prefix) {
                bail!("the chat template does not render conversations incrementally (turn {i})");
            }
            if !through[prefix.len()..].contains(m.content.trim()) {
                bail!("the chat template dropped assistant turn {i}");
            }
            spans.push(prefix.len()..through.len());
        }
        Ok((full, spans))
    }
}

/// A tokenised conversation: ids and which positions are trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub ids: Vec<u32>,
    /// `true` where the token belongs to an assistant turn that is trained on.
    pub trained: Vec<bool>,
    /// The example's weight in the loss (a record's `weight`; 1 by default).
    pub weight: f32,
    /// Which set of records it belongs to (its record's `kind`; an index
    /// into [`crate::io::data::Dataset::sets`]): the loss averages per set.
    pub set: usize,
}

/// Tokenise a conversation, marking assistant tokens.
pub fn encode_conversation(
    template: &ChatTemplate,
    tokenizer: &tokenizers::Tokenizer,
    messages: &[Message],
) -> Result<Example> {
    if !messages.iter().any(|m| m.role == "assistant") {
        bail!("the conversation has no assistant turn");
    }
    for m in messages {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
            bail!("unknown role '{}' (system, user or assistant)", m.role);
        }
        if !matches!(m.weight, None | Some(0) | Some(1)) {
            bail!("a message's weight must be 0 or 1");
        }
    }
    let (text, spans) = template.render_with_spans(messages)?;
    // Spans come one per assistant turn, in order; weight 0 turns are context.
    let spans: Vec<_> = messages
        .iter()
        .filter(|m| m.role == "assistant")
        .zip(spans)
        .filter(|(m, _)| m.weight != Some(0))
        .map(|(_, span)| span)
        .collect();
    if spans.is_empty() {
        bail!("every assistant turn has weight 0: nothing to train on");
    }
    let enc = tokenizer
        .encode(text.as_str(), false)
        .map_err(|e| anyhow!("cannot tokenise: {e}"))?;
    let trained = enc
        .get_offsets()
        .iter()
        // By where a token starts: a token trimmed to an empty span (a lone
        // space, with `trim_offsets`) still belongs to the turn it starts in.
        .map(|(start, _)| spans.iter().any(|s| s.contains(start)))
        .collect();
    Ok(Example {
        ids: enc.get_ids().to_vec(),
        trained,
        weight: 1.0,
        set: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen2_template_renders_exactly_as_transformers() {
        let t = ChatTemplate::new(QWEN2_TEMPLATE, "", "<|im_end|>").unwrap();
        let msgs = [
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello!"),
        ];
        assert_eq!(
            t.render(&msgs, false).unwrap(),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello!<|im_end|>\n"
        );
        let with_system = [
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
        ];
        assert_eq!(
            t.render(&with_system, true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let (full, spans) = t.render_with_spans(&msgs).unwrap();
        assert_eq!(&full[spans[0].clone()], "Hello!<|im_end|>\n");
    }

    #[test]
    fn generation_markers_render_nothing() {
        let plain = ChatTemplate::new(QWEN2_TEMPLATE, "", "<|im_end|>").unwrap();
        let marked = ChatTemplate::new(TRAINABLE_CHATML_TEMPLATE, "", "<|im_end|>").unwrap();
        let msgs = [
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello!"),
            Message::new("user", "Again"),
        ];
        for generation_prompt in [false, true] {
            assert_eq!(
                marked.render(&msgs, generation_prompt).unwrap(),
                plain.render(&msgs, generation_prompt).unwrap()
            );
        }
        assert_eq!(
            without_generation_tags("a {%- generation -%} b {% endgeneration %}{% if x %}"),
            "a {{- '' -}} b {{ '' }}{% if x %}"
        );
    }

    #[test]
    fn template_errors_are_reported() {
        assert!(ChatTemplate::new("{% for %}", "", "").is_err());
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        let err = t.render(&[Message::new("user", "x")], false).unwrap_err();
        assert!(err.to_string().contains("no system role"), "{err}");
    }
}
