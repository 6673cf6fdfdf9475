//! `leafe-host report`.

use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use leafe_host::jobs::report;
use std::path::PathBuf;

#[derive(Args)]
pub struct ReportCmd {
    /// Directories written by `run --out` or `eval --out`.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Write the Markdown here instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the Pass@k curves as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
}

impl ReportCmd {
    pub fn execute(self, _ctx: &Ctx) -> Result<()> {
        let entries = report::load(&self.dirs)?;
        let md = report::markdown(&entries);
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
