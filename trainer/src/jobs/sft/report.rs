//! What a run reports as it goes: the loss log (`loss_log.jsonl`) and the
//! loss curve (`loss.svg`).

use anyhow::{Context, Result};
use std::path::Path;

/// One logged optimizer step.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    /// 0 when the step was skipped (`overflow`).
    pub grad_norm: f64,
    pub tokens: usize,
    pub tokens_per_s: f64,
    /// f16 training: the loss scale the step ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// f16 training: the scaled gradients overflowed, so the step updated
    /// nothing (and the scale was halved).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overflow: bool,
}

pub(crate) fn write_log(dir: &Path, log: &[LogEntry]) -> Result<()> {
    let mut text = String::new();
    for e in log {
        text.push_str(&serde_json::to_string(e)?);
        text.push('\n');
    }
    std::fs::write(dir.join("loss_log.jsonl"), text)
        .with_context(|| format!("cannot write the loss log in {}", dir.display()))
}

/// The loss per step as a small SVG line chart.
pub fn loss_curve_svg(log: &[LogEntry]) -> String {
    let (w, h, pad) = (640.0, 360.0, 48.0);
    let max_loss = log.iter().map(|e| e.loss).fold(0.0f64, f64::max).max(1e-9);
    let last_step = log.last().map(|e| e.step).unwrap_or(1).max(1) as f64;
    let points: Vec<String> = log
        .iter()
        .map(|e| {
            let x = pad + (w - 2.0 * pad) * e.step as f64 / last_step;
            let y = h - pad - (h - 2.0 * pad) * e.loss / max_loss;
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{pad}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{b}" stroke="black"/>
<text x="{pad}" y="{t}">loss (max {max_loss:.3})</text><text x="{r}" y="{lbl}" text-anchor="end">step {last_step}</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>
</svg>
"##,
        b = h - pad,
        r = w - pad,
        t = pad - 12.0,
        lbl = h - pad + 20.0,
        pts = points.join(" ")
    )
}
