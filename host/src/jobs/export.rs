//! `leafe-host export`: distillation data from runs, as chat JSONL for
//! `leafe-trainer sft` (and TRL / LLaMA-Factory / OpenAI fine-tuning).
//!
//! Every record is a conversation in exactly the form the `openai` policy
//! prompts with (same system prompt, history and "valid actions" line), so
//! that what is learned is what is asked at test time. Earlier actions in
//! the history are context (`"weight": 0`); only the target action is
//! trained on. Each record carries its source (`run`, `task`, `node`) and
//! its `kind`:
//!
//! - `leafe` data: `cf` records — at each branch point whose revised branch
//!   succeeded, the history *without* the experience and the revised action
//!   (at most `cf_per_task` per task) — and `reh` records — every step of a
//!   random `reh_fraction` of the successful trajectories, with record
//!   weight `beta` (L = L_cf + beta * L_reh);
//! - `rft`: every step of every successful trajectory (rejection-sampling
//!   fine-tuning, the baseline trained on `sample` runs);
//! - `iwm`: implicit world modelling (Early Experience): from the history and
//!   an action, predict the next observation, for every transition.

use super::open::{OpenRun, open_run, task_of};
use crate::agent::prompt::{PromptConfig, answer_text, messages};
use crate::agent::{Context, Experience};
use crate::env::component::EnvComponent;
use crate::env::contract::Task;
use crate::env::runtime::Runtime;
use crate::env::session::{Session, SessionError};
use crate::llm::Message;
use crate::tree::path::{ancestors, corrections};
use crate::tree::{Header, Node};
use crate::util::fs::write_atomic;
use crate::util::rng::SplitMix;
use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Which data to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportData {
    /// L_cf corrections + L_reh rehearsal (LEAFE stage 2).
    Leafe,
    /// Successful trajectories only (RFT).
    Rft,
    /// Next-observation prediction (Early Experience, implicit world modelling).
    Iwm,
}

pub struct ExportArgs {
    pub runs: Vec<PathBuf>,
    pub out: PathBuf,
    pub data: ExportData,
    pub cf_per_task: usize,
    pub reh_fraction: f64,
    pub beta: f64,
    pub seed: u64,
    pub prompt: PromptConfig,
    /// Keep the experience in the prompt of `cf` records: data that teaches
    /// a base policy to *follow* lessons (not LEAFE's L_cf, which drops them).
    pub keep_experience: bool,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExportSummary {
    pub records: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub tasks: usize,
    pub successful_trajectories: usize,
}

#[derive(Serialize)]
struct Record<'a> {
    messages: Vec<OutMessage>,
    weight: f64,
    kind: &'static str,
    source: Source<'a>,
}

#[derive(Serialize)]
struct OutMessage {
    role: String,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<u8>,
}

#[derive(Serialize)]
struct Source<'a> {
    run: &'a str,
    env: &'a str,
    split: &'a str,
    task: u32,
    node: u32,
}

/// A task's tree with the admissible actions of its states, found by
/// replaying the recorded actions (the log does not keep them).
struct TaskTree<'a> {
    env: &'a Arc<EnvComponent>,
    task: Task,
    nodes: &'a [Node],
    admissible: BTreeMap<u32, Option<Vec<String>>>,
}

impl<'a> TaskTree<'a> {
    fn path(&self, id: u32) -> Vec<&'a Node> {
        ancestors(self.nodes, id)
    }

    /// The admissible actions at every state of `path`.
    fn admissible_along(&mut self, path: &[&Node]) -> Result<()> {
        if path.iter().all(|n| self.admissible.contains_key(&n.id)) {
            return Ok(());
        }
        let err = |e: SessionError| anyhow!("task {}: {e}", self.task.index);
        let mut session = Session::new(self.env, self.task.seed).map_err(err)?;
        session.reset(&self.task).map_err(err)?;
        for (i, node) in path.iter().enumerate() {
            if i > 0 {
                session
                    .step(node.action.as_deref().unwrap_or(""))
                    .map_err(err)?;
            }
            let actions = session.admissible_actions().map_err(err)?;
            self.admissible.insert(node.id, actions);
        }
        Ok(())
    }

    /// The policy's prompt at the last state of `path`, with no lessons,
    /// and `action` written as the policy is asked to answer.
    fn prompt(
        &mut self,
        prompt: &PromptConfig,
        path: &[&Node],
        action: &str,
    ) -> Result<Vec<OutMessage>> {
        self.prompt_with(prompt, path, action, &[])
    }

    fn prompt_with(
        &mut self,
        prompt: &PromptConfig,
        path: &[&Node],
        action: &str,
        experiences: &[Experience],
    ) -> Result<Vec<OutMessage>> {
        self.admissible_along(path)?;
        let here = path.last().context("empty path")?;
        let admissible = self.admissible.get(&here.id).cloned().flatten();
        let target = answer_text(action, admissible.is_some());
        let ctx = Context {
            info: &self.env.info,
            path,
            experiences,
            admissible,
            expert: None,
        };
        Ok(with_target(messages(prompt, &ctx), &target))
    }
}

/// The prompt's messages with earlier actions as context and `target` as
/// the one trained turn.
fn with_target(prompt: Vec<Message>, target: &str) -> Vec<OutMessage> {
    let mut out: Vec<OutMessage> = prompt
        .into_iter()
        .map(|m| OutMessage {
            weight: (m.role == "assistant").then_some(0),
            role: m.role,
            content: m.content,
        })
        .collect();
    out.push(OutMessage {
        role: "assistant".into(),
        content: target.into(),
        weight: None,
    });
    out
}

/// The records written so far.
struct Writer {
    text: String,
    summary: ExportSummary,
}

impl Writer {
    fn push(&mut self, record: &Record) -> Result<()> {
        self.text.push_str(&serde_json::to_string(record)?);
        self.text.push('\n');
        self.summary.records += 1;
        *self
            .summary
            .by_kind
            .entry(record.kind.to_string())
            .or_default() += 1;
        Ok(())
    }
}

/// Where a task's records come from.
#[derive(Clone, Copy)]
struct Origin<'a> {
    run: &'a str,
    header: &'a Header,
    task: u32,
}

impl<'a> Origin<'a> {
    fn at(&self, node: u32) -> Source<'a> {
        Source {
            run: self.run,
            env: &self.header.env,
            split: &self.header.split,
            task: self.task,
            node,
        }
    }
}

/// One record per step of the trajectory ending at `leaf`.
fn trajectory(
    out: &mut Writer,
    tree: &mut TaskTree,
    prompt: &PromptConfig,
    origin: Origin,
    leaf: u32,
    kind: &'static str,
    weight: f64,
) -> Result<()> {
    let path = tree.path(leaf);
    for t in 1..path.len() {
        let action = path[t].action.as_deref().unwrap_or("");
        out.push(&Record {
            messages: tree.prompt(prompt, &path[..t], action)?,
            weight,
            kind,
            source: origin.at(path[t].id),
        })?;
    }
    Ok(())
}

pub fn export(runtime: &Arc<Runtime>, args: &ExportArgs) -> Result<ExportSummary> {
    if args.runs.is_empty() {
        bail!("name at least one run directory");
    }
    let beta_ok = args.beta >= 0.0 && args.beta.is_finite();
    if !((0.0..=1.0).contains(&args.reh_fraction) && beta_ok) {
        bail!("--reh-fraction must be in [0, 1] and --beta a number >= 0");
    }
    let mut out = Writer {
        text: String::new(),
        summary: ExportSummary::default(),
    };
    for run in &args.runs {
        let OpenRun {
            header,
            env,
            by_task,
        } = open_run(runtime, run, None).with_context(|| format!("run {}", run.display()))?;
        let run_name = run.display().to_string();
        // Which successful trajectories are rehearsed: a seeded choice over the run.
        let mut all_successes: Vec<(u32, u32)> = by_task
            .iter()
            .flat_map(|(t, nodes)| nodes.iter().filter(|n| n.success).map(move |n| (*t, n.id)))
            .collect();
        out.summary.successful_trajectories += all_successes.len();
        let mut rng = SplitMix::derive(args.seed, &[all_successes.len() as u64]);
        for i in (1..all_successes.len()).rev() {
            all_successes.swap(i, rng.below(i + 1));
        }
        let rehearse = (args.reh_fraction * all_successes.len() as f64).round() as usize;
        let rehearsed = &all_successes[..rehearse];

        for (index, nodes) in &by_task {
            out.summary.tasks += 1;
            let mut tree = TaskTree {
                env: &env,
                task: task_of(&header, *index),
                nodes,
                admissible: BTreeMap::new(),
            };
            let origin = Origin {
                run: &run_name,
                header: &header,
                task: *index,
            };
            let successes: Vec<u32> = nodes.iter().filter(|n| n.success).map(|n| n.id).collect();
            match args.data {
                ExportData::Leafe => {
                    for n in corrections(nodes).take(args.cf_per_task) {
                        let path = tree.path(n.parent.unwrap_or(0));
                        let action = n.action.as_deref().unwrap_or("");
                        let lesson: Vec<Experience> = n
                            .experience
                            .iter()
                            .filter(|_| args.keep_experience)
                            .map(|text| Experience::advice(text.clone()))
                            .collect();
                        out.push(&Record {
                            messages: tree.prompt_with(&args.prompt, &path, action, &lesson)?,
                            weight: 1.0,
                            kind: "cf",
                            source: origin.at(n.id),
                        })?;
                    }
                    for &(_, leaf) in rehearsed.iter().filter(|(t, _)| t == index) {
                        trajectory(
                            &mut out,
                            &mut tree,
                            &args.prompt,
                            origin,
                            leaf,
                            "reh",
                            args.beta,
                        )?;
                    }
                }
                ExportData::Rft => {
                    for &leaf in &successes {
                        trajectory(&mut out, &mut tree, &args.prompt, origin, leaf, "rft", 1.0)?;
                    }
                }
                ExportData::Iwm => {
                    for n in nodes.iter().filter(|n| n.parent.is_some()) {
                        let path = tree.path(n.id);
                        out.push(&Record {
                            messages: world_model_messages(&env, &path),
                            weight: 1.0,
                            kind: "iwm",
                            source: origin.at(n.id),
                        })?;
                    }
                }
            }
        }
    }
    if out.summary.records == 0 {
        bail!(
            "no records: the runs have no {} (try more tasks or a larger --budget)",
            match args.data {
                ExportData::Leafe => "successful corrections or trajectories",
                ExportData::Rft => "successful trajectories",
                ExportData::Iwm => "transitions",
            }
        );
    }
    write_atomic(&args.out, out.text.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(out.summary)
}

/// Predict the observation at the end of `path` from what came before.
fn world_model_messages(env: &EnvComponent, path: &[&Node]) -> Vec<OutMessage> {
    let (last, before) = path.split_last().expect("a transition has two states");
    let mut history = format!("Start:\n{}", before[0].observation);
    for n in &before[1..] {
        history.push_str(&format!(
            "\n\nAction: {}\nObservation:\n{}",
            n.action.as_deref().unwrap_or(""),
            n.observation
        ));
    }
    let message = |role: &str, content: String| OutMessage {
        role: role.into(),
        content,
        weight: None,
    };
    vec![
        message(
            "system",
            format!(
                "You predict what the environment \"{}\" shows after an action.\n{}",
                env.info.name, env.info.action_hint
            ),
        ),
        message(
            "user",
            format!(
                "{history}\n\nAction: {}\nWhat does the environment show next?",
                last.action.as_deref().unwrap_or("")
            ),
        ),
        message("assistant", last.observation.clone()),
    ]
}

/// Where `export` writes by default: `RUN/chat-DATA.jsonl` for one run.
pub fn default_out(runs: &[PathBuf], data: ExportData) -> Result<PathBuf> {
    let name = match data {
        ExportData::Leafe => "chat-leafe.jsonl",
        ExportData::Rft => "chat-rft.jsonl",
        ExportData::Iwm => "chat-iwm.jsonl",
    };
    match runs {
        [one] => Ok(one.join(name)),
        _ => bail!("with several runs, say where to write with --out"),
    }
}
