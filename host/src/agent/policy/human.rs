//! The `human` policy: the person at the terminal sees each observation
//! (and the lessons) on stderr and types the action on stdin.

use super::{Decision, Policy};
use crate::agent::Context;
use anyhow::{Result, bail};

/// The person at the terminal.
pub struct Human;

impl Policy for Human {
    fn act(&mut self, ctx: &Context) -> Result<Decision> {
        use std::io::{BufRead, Write};
        let mut err = std::io::stderr().lock();
        let here = ctx.current();
        writeln!(err, "\n{}", here.observation)?;
        for e in ctx.experiences {
            writeln!(err, "lesson: {}", e.text)?;
        }
        match &ctx.admissible {
            Some(actions) if actions.len() > 20 => writeln!(
                err,
                "actions: {}, ... ({} in all)",
                actions[..20].join(", "),
                actions.len()
            )?,
            Some(actions) => writeln!(err, "actions: {}", actions.join(", "))?,
            None => {}
        }
        write!(err, "> ")?;
        err.flush()?;
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line)? == 0 {
            bail!("standard input ended: the human policy has no more actions");
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string().into())
    }
}
