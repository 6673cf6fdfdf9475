//! `leafe-host play`: a person plays an environment in the terminal, with
//! `undo` (back to the previous state) and `branch N` (back to any earlier
//! state, starting a new branch from there). Every state is snapshotted, so
//! going back is a restore, as in exploration (a remote environment's
//! restore replays the path).

use crate::env::contract::Task;
use crate::env::environment::Environment;
use anyhow::Result;
use std::io::{BufRead, Write};

const HELP: &str = "Type an action to play it. Commands: undo · branch N (go back to state N) · \
tree (list states) · hint (the expert's move) · actions (valid actions) · help · quit";

struct State {
    parent: Option<usize>,
    action: Option<String>,
    observation: String,
    snapshot: Vec<u8>,
    over: bool,
}

/// Play `task` reading commands from `input` and writing to `out`.
pub fn play(
    env: &Environment,
    task: &Task,
    input: impl BufRead,
    mut out: impl Write,
) -> Result<()> {
    let mut session = env.instance(task.seed)?;
    let first = session.reset(task)?;
    let info = env.info();
    writeln!(
        out,
        "{} {} — {}\n{HELP}\n",
        info.name, info.version, info.action_hint
    )?;
    let mut states = vec![State {
        parent: None,
        action: None,
        observation: first,
        snapshot: session.snapshot()?,
        over: false,
    }];
    let mut at = 0;
    writeln!(out, "[state 0]\n{}", states[0].observation)?;
    for line in input.lines() {
        let line = line?;
        let command = line.trim();
        let mut words = command.split_whitespace();
        let goto = match (words.next(), words.next()) {
            (None, _) => continue,
            (Some("quit" | "exit"), None) => break,
            (Some("help"), None) => {
                writeln!(out, "{HELP}")?;
                continue;
            }
            (Some("tree"), None) => {
                for (i, s) in states.iter().enumerate() {
                    let mark = if i == at { "*" } else { " " };
                    let from = s
                        .parent
                        .map(|p| format!("from {p} by '{}'", s.action.as_deref().unwrap_or("")))
                        .unwrap_or_else(|| "start".into());
                    writeln!(
                        out,
                        "{mark} {i}: {from}{}",
                        if s.over { " (over)" } else { "" }
                    )?;
                }
                continue;
            }
            (Some("hint"), None) => {
                let hint = session.expert_action()?;
                writeln!(out, "expert: {}", hint.as_deref().unwrap_or("(none)"))?;
                continue;
            }
            (Some("actions"), None) => {
                let actions = session.admissible_actions()?;
                writeln!(
                    out,
                    "{}",
                    actions
                        .map(|a| a.join(", "))
                        .unwrap_or_else(|| "(not listed by this environment)".into())
                )?;
                continue;
            }
            (Some("undo"), None) => match states[at].parent {
                Some(p) => Some(p),
                None => {
                    writeln!(out, "already at the start")?;
                    continue;
                }
            },
            (Some("branch" | "goto"), Some(n)) => match n.parse::<usize>() {
                Ok(n) if n < states.len() => Some(n),
                _ => {
                    writeln!(out, "no state {n} (states 0 to {})", states.len() - 1)?;
                    continue;
                }
            },
            _ => None,
        };
        if let Some(target) = goto {
            session.restore(&states[target].snapshot)?;
            at = target;
            writeln!(out, "[state {at}]\n{}", states[at].observation)?;
            continue;
        }
        if states[at].over {
            writeln!(out, "the episode is over: undo, branch N, or quit")?;
            continue;
        }
        let result = match session.step(command) {
            Ok(r) => r,
            Err(err) => {
                writeln!(out, "error: {err}; back to state {at}")?;
                session.restore(&states[at].snapshot)?;
                continue;
            }
        };
        let over = result.terminated || result.truncated;
        states.push(State {
            parent: Some(at),
            action: Some(command.to_string()),
            observation: result.observation.clone(),
            snapshot: session.snapshot()?,
            over,
        });
        at = states.len() - 1;
        writeln!(
            out,
            "[state {at}] reward {:+.1}\n{}",
            result.reward, result.observation
        )?;
        if result.terminated {
            writeln!(
                out,
                "{}",
                if result.success() {
                    "*** solved ***"
                } else {
                    "episode over"
                }
            )?;
        } else if result.truncated {
            writeln!(out, "out of steps")?;
        }
        out.flush()?;
    }
    Ok(())
}
