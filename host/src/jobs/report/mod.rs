//! `leafe-host report`: compare runs and evaluations in a Markdown table,
//! and evaluations' Pass@k curves in an SVG picture; with several seeds per
//! variant, Pass@k with intervals ([`intervals`]).

pub mod intervals;

use crate::tree::rundir::SUMMARY;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a directory holds.
pub enum Entry {
    /// `leafe-host eval --out DIR`.
    Eval { name: String, summary: EvalView },
    /// `leafe-host run --out DIR`.
    Run { name: String, summary: RunView },
}

#[derive(Deserialize)]
pub struct EvalView {
    pub env: String,
    pub split: String,
    pub policy: String,
    pub tasks: u32,
    pub samples: u32,
    pub curve: Vec<f64>,
    pub solved_tasks: u32,
    pub errors: u32,
}

#[derive(Deserialize)]
pub struct RunView {
    pub env: String,
    pub split: String,
    pub policy: String,
    #[serde(default)]
    pub method: Option<String>,
    pub tasks: usize,
    pub solved: usize,
    pub solve_rate: f64,
    /// Policy decisions.
    pub steps: u64,
    /// What a reset-and-replay implementation would execute (absent in
    /// summaries from before budget units).
    #[serde(default)]
    pub env_steps: Option<u64>,
    pub backtracks: u64,
    pub corrections: usize,
    pub errors: usize,
}

/// Read the `summary.json` of each directory.
pub fn load(dirs: &[PathBuf]) -> Result<Vec<Entry>> {
    if dirs.is_empty() {
        bail!("name at least one run or eval directory");
    }
    let mut entries: Vec<Entry> = dirs.iter().map(|d| load_one(d)).collect::<Result<_>>()?;
    // Directories of the same name (`seed-0/eval`, `seed-1/eval`) are told
    // apart by their parent's name.
    let names: Vec<String> = entries.iter().map(|e| e.name().to_string()).collect();
    for (entry, dir) in entries.iter_mut().zip(dirs) {
        let name = entry.name().to_string();
        let parent = dir.parent().and_then(|p| p.file_name());
        if let (true, Some(parent)) = (names.iter().filter(|n| **n == name).count() > 1, parent) {
            entry.rename(format!("{}/{name}", parent.to_string_lossy()));
        }
    }
    Ok(entries)
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Eval { name, .. } | Entry::Run { name, .. } => name,
        }
    }

    fn rename(&mut self, new: String) {
        match self {
            Entry::Eval { name, .. } | Entry::Run { name, .. } => *name = new,
        }
    }
}

fn load_one(dir: &Path) -> Result<Entry> {
    let path = dir.join(SUMMARY);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (a finished `run --out` or `eval --out` directory has one)",
            path.display()
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    if value.get("curve").is_some() {
        let summary = serde_json::from_value(value)
            .with_context(|| format!("{}: not an eval summary", path.display()))?;
        Ok(Entry::Eval { name, summary })
    } else {
        let summary = serde_json::from_value(value)
            .with_context(|| format!("{}: not a run summary", path.display()))?;
        Ok(Entry::Run { name, summary })
    }
}

/// The k shown in tables: powers of two up to the most samples.
fn table_ks(entries: &[Entry]) -> Vec<u32> {
    let most = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Eval { summary, .. } => Some(summary.samples),
            Entry::Run { .. } => None,
        })
        .max()
        .unwrap_or(0);
    std::iter::successors(Some(1u32), |k| k.checked_mul(2))
        .take_while(|k| *k <= most)
        .collect()
}

/// The comparison as Markdown: one table for evaluations, one for runs.
pub fn markdown(entries: &[Entry]) -> String {
    let mut md = String::new();
    let ks = table_ks(entries);
    let evals: Vec<(&String, &EvalView)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Eval { name, summary } => Some((name, summary)),
            Entry::Run { .. } => None,
        })
        .collect();
    if !evals.is_empty() {
        md.push_str("| eval | env | split | policy | tasks | samples |");
        for k in &ks {
            let _ = write!(md, " pass@{k} |");
        }
        md.push_str(" solved by any | errors |\n|---|---|---|---|---|---|");
        md.push_str(&"---|".repeat(ks.len()));
        md.push_str("---|---|\n");
        for (name, s) in &evals {
            let _ = write!(
                md,
                "| {name} | {} | {} | {} | {} | {} |",
                s.env, s.split, s.policy, s.tasks, s.samples
            );
            for k in &ks {
                match s.curve.get(*k as usize - 1) {
                    Some(v) => {
                        let _ = write!(md, " {:.1} |", 100.0 * v);
                    }
                    None => md.push_str(" |"),
                }
            }
            let _ = writeln!(md, " {}/{} | {} |", s.solved_tasks, s.tasks, s.errors);
        }
    }
    let runs: Vec<(&String, &RunView)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Run { name, summary } => Some((name, summary)),
            Entry::Eval { .. } => None,
        })
        .collect();
    if !runs.is_empty() {
        if !md.is_empty() {
            md.push('\n');
        }
        md.push_str(
            "| run | env | split | policy | method | tasks | solved | solve rate | steps | env steps | backtracks | corrections | errors |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for (name, s) in &runs {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} | {} | {} |",
                s.env,
                s.split,
                s.policy,
                s.method.as_deref().unwrap_or("leafe"),
                s.tasks,
                s.solved,
                100.0 * s.solve_rate,
                s.steps,
                s.env_steps.map_or("-".to_string(), |n| n.to_string()),
                s.backtracks,
                s.corrections,
                s.errors
            );
        }
    }
    md
}

const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Pass@k against k (log scale) for every evaluation; `None` without any.
pub fn svg(entries: &[Entry]) -> Option<String> {
    let evals: Vec<(&String, &EvalView)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Eval { name, summary } if !summary.curve.is_empty() => Some((name, summary)),
            _ => None,
        })
        .collect();
    if evals.is_empty() {
        return None;
    }
    let (w, h, left, right, top, bottom) = (640.0, 400.0, 60.0, 170.0, 20.0, 50.0);
    let max_k = evals.iter().map(|(_, s)| s.curve.len()).max().unwrap_or(1) as f64;
    let x_span = max_k.log2().max(1.0);
    let x = |k: f64| left + (w - left - right) * k.log2() / x_span;
    let y = |p: f64| top + (h - top - bottom) * (1.0 - p);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Axes, grid and labels.
    for i in 0..=5 {
        let p = f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4:.0}%</text>",
            y(p),
            w - right,
            left - 6.0,
            y(p) + 4.0,
            100.0 * p
        );
    }
    let mut k = 1.0;
    while k <= max_k {
        let _ = writeln!(
            s,
            "<line x1=\"{0:.1}\" y1=\"{top}\" x2=\"{0:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/>\
             <text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{k}</text>",
            x(k),
            h - bottom,
            h - bottom + 16.0
        );
        k *= 2.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">k (samples)</text>\
         <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">Pass@k</text>",
        left + (w - left - right) / 2.0,
        h - 10.0,
        top + (h - top - bottom) / 2.0,
        top + (h - top - bottom) / 2.0
    );
    for (i, (name, e)) in evals.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = e
            .curve
            .iter()
            .enumerate()
            .map(|(j, p)| format!("{:.1},{:.1}", x(j as f64 + 1.0), y(*p)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            w - right + 10.0,
            top + 16.0 * (i as f64 + 1.0),
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
