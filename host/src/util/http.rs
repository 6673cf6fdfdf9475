//! What the host's HTTP clients (the chat client, remote environments)
//! read off an answer the same way.

use std::time::Duration;

/// The answer's `Retry-After`, when it gives whole seconds.
pub fn retry_after(answer: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}
