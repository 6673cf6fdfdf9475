//! An OpenAI-compatible chat-completions client (vLLM, SGLang,
//! `leafe-trainer serve`, hosted APIs): timeouts, retries with exponential
//! backoff on connection errors, 429 and 5xx (honouring `Retry-After`),
//! bounded concurrency and token usage accounting.

use crate::util::setting::{BadSetting, check, check_range};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Where and how to ask.
#[derive(Clone, Debug)]
pub struct ChatConfig {
    /// The API root, e.g. `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: u32,
    /// Per request.
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first retry's wait; doubled each time.
    pub backoff: Duration,
    /// Requests in flight at once, over all threads.
    pub concurrency: usize,
}

impl ChatConfig {
    /// Check the settings a user gives: the URL's scheme and the sampling
    /// ranges; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        let url = &self.base_url;
        if !url.starts_with("http://") && !url.starts_with("https://") {
            let problem = format!("must start with http:// or https://, got '{url}'");
            return Err(BadSetting::new("base_url", problem));
        }
        check_range("temperature", self.temperature, 0.0, 2.0)?;
        check_range("top_p", self.top_p, 0.0, 1.0)?;
        check(self.max_tokens >= 1, "max_tokens", "must be at least 1")?;
        check(
            !self.timeout.is_zero(),
            "request_timeout",
            "must be positive",
        )?;
        check(self.concurrency >= 1, "concurrency", "must be at least 1")
    }
}

/// Why a request failed for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("cannot reach {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} sent a response that is not a chat completion: {why}")]
    BadResponse { url: String, why: String },
}

impl ChatError {
    fn retryable(&self) -> bool {
        match self {
            ChatError::Unreachable { .. } => true,
            ChatError::Http { status, .. } => *status == 429 || *status >= 500,
            ChatError::BadResponse { .. } => false,
        }
    }
}

/// Token and request counts, over the client's life.
#[derive(Debug, Default)]
pub struct Usage {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub failures: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub cached_prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
}

/// A snapshot of [`Usage`], for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub requests: u64,
    pub retries: u64,
    pub failures: u64,
    pub prompt_tokens: u64,
    /// Of the prompt tokens, those the server took from its prefix cache
    /// (`usage.prompt_tokens_details.cached_tokens`; absent in older
    /// summaries and from servers that do not say).
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Serialize)]
struct Request<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f64,
    top_p: f64,
    max_tokens: u32,
    n: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

#[derive(Deserialize)]
struct Response {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct ResponseUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

/// OpenAI's `usage.prompt_tokens_details` (vLLM, SGLang and leafe-trainer
/// fill `cached_tokens`).
#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// A client shared by every task of a run.
pub struct ChatClient {
    pub config: ChatConfig,
    agent: ureq::Agent,
    pub usage: Usage,
    in_flight: Mutex<usize>,
    slot_free: Condvar,
}

/// Responses larger than this are refused (a runaway server).
const MAX_RESPONSE_BYTES: u64 = 16 << 20;

impl ChatClient {
    /// A client for `config`, once its settings are in range.
    pub fn new(config: ChatConfig) -> Result<ChatClient, BadSetting> {
        config.validate()?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(ChatClient {
            config,
            agent,
            usage: Usage::default(),
            in_flight: Mutex::new(0),
            slot_free: Condvar::new(),
        })
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }

    pub fn totals(&self) -> UsageTotals {
        let u = &self.usage;
        UsageTotals {
            requests: u.requests.load(Ordering::Relaxed),
            retries: u.retries.load(Ordering::Relaxed),
            failures: u.failures.load(Ordering::Relaxed),
            prompt_tokens: u.prompt_tokens.load(Ordering::Relaxed),
            cached_prompt_tokens: u.cached_prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: u.completion_tokens.load(Ordering::Relaxed),
        }
    }

    /// `n` completions of `messages`, retrying what is worth retrying.
    pub fn complete(
        &self,
        messages: &[Message],
        n: u32,
        seed: Option<u64>,
    ) -> Result<Vec<String>, ChatError> {
        let _slot = self.acquire();
        let body = Request {
            model: &self.config.model,
            messages,
            temperature: self.config.temperature,
            top_p: self.config.top_p,
            max_tokens: self.config.max_tokens,
            n: n.max(1),
            seed,
        };
        let mut attempt = 0;
        loop {
            self.usage.requests.fetch_add(1, Ordering::Relaxed);
            let (result, retry_after) = self.attempt(&body);
            match result {
                Ok(answers) => return Ok(answers),
                Err(e) if e.retryable() && attempt < self.config.retries => {
                    self.usage.retries.fetch_add(1, Ordering::Relaxed);
                    let backoff = self.config.backoff * 2u32.saturating_pow(attempt);
                    std::thread::sleep(retry_after.unwrap_or(backoff).min(Duration::from_secs(60)));
                    attempt += 1;
                }
                Err(e) => {
                    self.usage.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    }

    /// One HTTP exchange: the answers, or the error and any `Retry-After`.
    fn attempt(&self, body: &Request) -> (Result<Vec<String>, ChatError>, Option<Duration>) {
        let url = self.url();
        let mut request = self.agent.post(&url);
        if let Some(key) = &self.config.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = match request.send_json(body) {
            Ok(r) => r,
            Err(e) => {
                let why = e.to_string();
                return (Err(ChatError::Unreachable { url, why }), None);
            }
        };
        let status = response.status().as_u16();
        let retry_after = crate::util::http::retry_after(&response);
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string();
        let text = match text {
            Ok(text) => text,
            Err(e) => {
                let why = format!("reading the response: {e}");
                return (Err(ChatError::Unreachable { url, why }), retry_after);
            }
        };
        if !(200..300).contains(&status) {
            let body = leafe_judge::clip(text.trim(), 300);
            return (Err(ChatError::Http { url, status, body }), retry_after);
        }
        let parsed: Response = match serde_json::from_str(&text) {
            Ok(p) => p,
            Err(e) => {
                let why = format!("{e} in {:?}", leafe_judge::clip(&text, 200));
                return (Err(ChatError::BadResponse { url, why }), None);
            }
        };
        if let Some(u) = &parsed.usage {
            self.usage
                .prompt_tokens
                .fetch_add(u.prompt_tokens, Ordering::Relaxed);
            self.usage
                .completion_tokens
                .fetch_add(u.completion_tokens, Ordering::Relaxed);
            let cached = u
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens);
            self.usage
                .cached_prompt_tokens
                .fetch_add(cached.unwrap_or(0), Ordering::Relaxed);
        }
        if parsed.choices.is_empty() {
            let why = "no choices".to_string();
            return (Err(ChatError::BadResponse { url, why }), None);
        }
        let answers = parsed
            .choices
            .into_iter()
            .map(|c| c.message.content.unwrap_or_default())
            .collect();
        (Ok(answers), None)
    }

    fn acquire(&self) -> SlotGuard<'_> {
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.config.concurrency.max(1) {
            n = self.slot_free.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        SlotGuard { client: self }
    }
}

struct SlotGuard<'a> {
    client: &'a ChatClient,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut n = self
            .client
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        self.client.slot_free.notify_one();
    }
}
