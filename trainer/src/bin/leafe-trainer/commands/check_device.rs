//! `leafe-trainer check-device`.

use super::{Ctx, write_json};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct CheckDeviceCmd {
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl CheckDeviceCmd {
    pub fn execute(self, ctx: &Ctx) -> Result<()> {
        if ctx.device.is_cpu() {
            bail!("check-device compares a GPU with the CPU: pass --device cuda");
        }
        let checks = leafe_trainer::jobs::devicecheck::compare(&ctx.device)?;
        for c in &checks {
            println!(
                "{} {}: max |diff| {:.2e} (tolerance {:.0e})",
                if c.holds() { "ok  " } else { "FAIL" },
                c.what,
                c.max_abs_diff,
                c.tolerance
            );
        }
        if let Some(path) = &self.json {
            write_json(path, &checks)?;
        }
        let failed = checks.iter().filter(|c| !c.holds()).count();
        if failed > 0 {
            bail!(
                "{failed} of {} checks differ beyond their tolerance",
                checks.len()
            );
        }
        println!("all {} checks agree", checks.len());
        Ok(())
    }
}
