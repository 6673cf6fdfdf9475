//! `leafe-host report`.

use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use leafe_host::jobs::report;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReportCmd {
    /// Directories written by `run --out` or `eval --out`.
    #[arg(required_unless_present = "variant")]
    dirs: Vec<PathBuf>,
    /// A variant evaluated under one or more seeds: NAME=DIR[,DIR...], each
    /// DIR an `eval --out` directory over the same tasks (repeat the flag for
    /// each variant). Adds Pass@k with 95% bootstrap intervals over tasks and
    /// seeds, and every pairwise difference, marking those whose interval
    /// includes zero.
    #[arg(long, value_name = "NAME=DIRS")]
    variant: Vec<String>,
    /// Write the Markdown here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the Pass@k curves as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
}

impl ReportCmd {
    pub fn execute(self, _ctx: &Ctx) -> Result<()> {
        let entries = match self.dirs.is_empty() {
            true => Vec::new(),
            false => report::load(&self.dirs)?,
        };
        let mut md = report::markdown(&entries);
        if !self.variant.is_empty() {
            let variants = self
                .variant
                .iter()
                .map(|v| report::intervals::Variant::parse(v))
                .collect::<Result<Vec<_>>>()?;
            if !md.is_empty() {
                md.push('\n');
            }
            md.push_str(&report::intervals::markdown(&report::intervals::compare(
                &variants,
            )?));
        }
        match self.out {
            Some(path) => std::fs::write(&path, &md)
                .with_context(|| format!("cannot write {}", path.display()))?,
            None => print!("{md}"),
        }
        if let Some(path) = self.svg {
            let picture = report::svg(&entries)
                .context("--svg needs at least one eval directory (run ones have no Pass@k)")?;
            std::fs::write(&path, picture)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}
