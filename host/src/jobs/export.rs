//! `leafe-host export`: distillation data from runs, as chat JSONL for
//! `leafe-trainer sft` (and TRL / LLaMA-Factory / OpenAI fine-tuning).
//!
//! Every record is a conversation in exactly the form the `openai` policy
//! prompts with, rebuilt from the prompt settings the run's header records
//! (system prompt, history budget, answer formats), so that what is learned
//! is what is asked at test time. Earlier actions in the history are context
//! (`"weight": 0`, or the `prompt` half with `--weights split`); only the
//! target turn is trained on: the action, or with `--target answer` the
//! model's whole answer. Each record carries its source (`run`, `task`,
//! `node`) and its `kind`:
//!
//! - `leafe` data: `cf` records — at each branch point whose revised branch
//!   succeeded (or, `--cf-from improved`, beat the branch it replaced), the
//!   prompt the policy saw there with the lessons' text left out and the
//!   revised action (at most `cf_per_task` per task; revisions that repeat
//!   the rejected action are dropped and counted) — and `reh` records —
//!   every step of a random `reh_fraction` of the successful trajectories,
//!   with record weight `beta` (L = L_cf + beta * L_reh);
//! - `rft`: every step of every successful trajectory (rejection-sampling
//!   fine-tuning, the baseline trained on `sample` runs);
//! - `iwm`: implicit world modelling (Early Experience): from the history and
//!   an action, predict the next observation, for every transition;
//! - `grpo`: from a `--method group` run, every step of every rollout with
//!   the model's sampled answer as the target and the rollout's
//!   group-relative advantage as the record weight (outcome reward: 1 for a
//!   success, else 0; advantage = (reward - group mean) / group std; groups
//!   whose rollouts all scored the same carry no signal and are left out).
//!   Trained with `leafe-trainer sft --allow-negative-weights`, this is one
//!   policy-gradient step.

use super::open::{OpenRun, open_run, task_of};
use crate::agent::prompt::{PromptConfig, answer_text, messages, messages_without_lessons};
use crate::agent::{Context, Experience};
use crate::env::contract::Task;
use crate::env::environment::Environment;
use crate::env::runtime::Runtime;
use crate::env::session::SessionError;
use crate::llm::Message;
use crate::tree::path::{
    CorrectionCriterion, ancestors, corrections, leaves, same_action_revisions,
};
use crate::tree::{Header, Method, Node};
use crate::util::fs::write_atomic;
use crate::util::rng::SplitMix;
use anyhow::{Context as _, Result, anyhow, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Which data to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExportData {
    /// L_cf corrections + L_reh rehearsal (LEAFE stage 2).
    Leafe,
    /// Successful trajectories only (RFT).
    Rft,
    /// Next-observation prediction (Early Experience, implicit world modelling).
    Iwm,
    /// Advantage-weighted sampled answers of a `group` run (GRPO).
    Grpo,
}

pub struct ExportArgs {
    pub runs: Vec<PathBuf>,
    pub out: PathBuf,
    pub data: ExportData,
    pub cf_per_task: usize,
    pub reh_fraction: f64,
    pub beta: f64,
    pub seed: u64,
    /// Changes to each run's recorded prompt settings (none: as recorded).
    pub prompt: PromptOverride,
    /// Keep the experience in the prompt of `cf` records: data that teaches
    /// a base policy to *follow* lessons (not LEAFE's L_cf, which drops them).
    pub keep_experience: bool,
    pub target: ExportTarget,
    pub cf_from: CorrectionCriterion,
    pub weights: WeightLayout,
    /// Write an empty file when the runs have nothing to export, instead of
    /// failing: for pipelines whose next stage handles "no data" itself.
    pub allow_empty: bool,
}

/// What the runs lacked when an export has no records.
pub fn nothing_to_export(data: ExportData) -> &'static str {
    match data {
        ExportData::Leafe => "successful corrections or trajectories",
        ExportData::Rft => "successful trajectories",
        ExportData::Iwm => "transitions",
        ExportData::Grpo => "group with both successes and failures (a `--method group` run)",
    }
}

/// Prompt settings that replace a run's recorded ones, for data meant for a
/// policy that will be asked differently.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PromptOverride {
    pub system: Option<String>,
    pub history_chars: Option<usize>,
}

impl PromptOverride {
    /// The prompt of a run recorded with `recorded` (older logs: the defaults).
    pub fn apply(&self, recorded: Option<&PromptConfig>) -> PromptConfig {
        let mut prompt = recorded.cloned().unwrap_or_default();
        if let Some(system) = &self.system {
            prompt.system = system.clone();
        }
        if let Some(chars) = self.history_chars {
            prompt.history_chars = chars;
        }
        prompt
    }
}

/// What the trained assistant turn holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ExportTarget {
    /// The action, written as the policy is asked to answer (`Action: X`).
    #[default]
    Action,
    /// The model's whole answer (reasoning and action) where the tree keeps
    /// one (a model policy's run); the action elsewhere.
    Answer,
}

/// How context turns are kept out of the loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum WeightLayout {
    /// `{"messages": [...]}` with `"weight": 0` on context assistant turns
    /// (OpenAI's fine-tuning format; `leafe-trainer sft` reads it).
    #[default]
    Inline,
    /// `{"prompt": [...], "completion": [target]}`: TRL's conversational
    /// prompt-completion format, where only the completion is trained.
    Split,
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ExportSummary {
    pub records: usize,
    pub by_kind: BTreeMap<String, usize>,
    pub tasks: usize,
    pub successful_trajectories: usize,
    /// Revised branches left out because they repeat the rejected action.
    pub same_action_dropped: usize,
    /// `--data grpo`: the groups' outcomes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<GroupStats>,
}

/// What the rollouts of a `group` run came to.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupStats {
    pub groups: usize,
    pub rollouts: usize,
    pub successes: usize,
    /// Mean outcome reward over all rollouts.
    pub mean_reward: f64,
    /// Groups whose rollouts all scored the same (no records written).
    pub without_signal: usize,
}

/// The outcome reward of each rollout (`leaves`), and their advantages
/// relative to the group: (r - mean) / std, or `None` when all are equal.
fn advantages(leaves: &[&Node]) -> (Vec<f64>, Option<Vec<f64>>) {
    let rewards: Vec<f64> = leaves
        .iter()
        .map(|n| f64::from(u8::from(n.success)))
        .collect();
    let n = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    let std = (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    let adv = (std > 1e-9).then(|| rewards.iter().map(|r| (r - mean) / std).collect());
    (rewards, adv)
}

#[derive(Serialize)]
struct Record<'a> {
    #[serde(flatten)]
    chat: Chat,
    weight: f64,
    kind: &'static str,
    source: Source<'a>,
}

/// A record's conversation in one of the [`WeightLayout`]s.
#[derive(Serialize)]
#[serde(untagged)]
enum Chat {
    Messages {
        messages: Vec<OutMessage>,
    },
    Split {
        prompt: Vec<OutMessage>,
        completion: Vec<OutMessage>,
    },
}

impl Chat {
    /// `messages` (whose last turn is the one trained) in `layout`.
    fn new(mut messages: Vec<OutMessage>, layout: WeightLayout) -> Chat {
        match layout {
            WeightLayout::Inline => Chat::Messages { messages },
            WeightLayout::Split => {
                let target = messages.pop().expect("a record has a trained turn");
                for m in &mut messages {
                    m.weight = None;
                }
                Chat::Split {
                    prompt: messages,
                    completion: vec![target],
                }
            }
        }
    }
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
    env: &'a Environment,
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
        let mut session = self.env.instance(self.task.seed).map_err(err)?;
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

    /// The policy's prompt at the last state of `path`, with the lessons
    /// `shown` to it (`show_lessons`: their text kept, else left out with the
    /// history window unchanged), and `node`'s action as the trained turn.
    fn prompt(
        &mut self,
        shape: &Shape,
        path: &[&Node],
        node: &Node,
        shown: &[Experience],
        show_lessons: bool,
    ) -> Result<Chat> {
        self.admissible_along(path)?;
        let here = path.last().context("empty path")?;
        let admissible = self.admissible.get(&here.id).cloned().flatten();
        let action = node.action.as_deref().unwrap_or("");
        let target = match (shape.target, &node.answer) {
            (ExportTarget::Answer, Some(answer)) => answer.clone(),
            _ => answer_text(action, admissible.is_some()),
        };
        let ctx = Context {
            info: self.env.info(),
            path,
            experiences: shown,
            admissible,
            expert: None,
        };
        let prompt = if show_lessons {
            messages(&shape.prompt, &ctx)
        } else {
            messages_without_lessons(&shape.prompt, &ctx)
        };
        Ok(Chat::new(with_target(prompt, &target), shape.weights))
    }
}

/// How one run's records are written.
#[derive(Clone)]
struct Shape {
    prompt: PromptConfig,
    target: ExportTarget,
    weights: WeightLayout,
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
    shape: &Shape,
    origin: Origin,
    leaf: u32,
    kind: &'static str,
    weight: f64,
) -> Result<()> {
    let path = tree.path(leaf);
    for t in 1..path.len() {
        out.push(&Record {
            chat: tree.prompt(shape, &path[..t], path[t], &[], false)?,
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
        // A group's rollouts are GRPO's samples; the branches of any other
        // method's tree are not independent samples of one policy.
        if args.data == ExportData::Grpo && header.method != Method::Group {
            bail!(
                "--data grpo needs a `run --method group` run; {} was made with --method {}",
                run.display(),
                header.method.as_str()
            );
        }
        let shape = Shape {
            prompt: args.prompt.apply(header.prompt.as_ref()),
            target: args.target,
            weights: args.weights,
        };
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
        // Rounded up (a few successes still give one), but not past a float's noise.
        let share = args.reh_fraction * all_successes.len() as f64;
        let rehearse = ((share - 1e-9).ceil().max(0.0) as usize).min(all_successes.len());
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
                    out.summary.same_action_dropped += same_action_revisions(nodes);
                    for n in corrections(nodes, args.cf_from).take(args.cf_per_task) {
                        let path = tree.path(n.parent.unwrap_or(0));
                        let shown: Vec<Experience> = n
                            .lessons_shown()
                            .into_iter()
                            .map(Experience::advice)
                            .collect();
                        out.push(&Record {
                            chat: tree.prompt(&shape, &path, n, &shown, args.keep_experience)?,
                            weight: 1.0,
                            kind: "cf",
                            source: origin.at(n.id),
                        })?;
                    }
                    for &(_, leaf) in rehearsed.iter().filter(|(t, _)| t == index) {
                        trajectory(&mut out, &mut tree, &shape, origin, leaf, "reh", args.beta)?;
                    }
                }
                ExportData::Rft => {
                    for &leaf in &successes {
                        trajectory(&mut out, &mut tree, &shape, origin, leaf, "rft", 1.0)?;
                    }
                }
                ExportData::Grpo => {
                    // The sampled answers are what the policy gradient is of.
                    let sampled = Shape {
                        target: ExportTarget::Answer,
                        ..shape.clone()
                    };
                    let ends = leaves(nodes);
                    let (rewards, advantages) = advantages(&ends);
                    let stats = out.summary.groups.get_or_insert_with(GroupStats::default);
                    stats.groups += 1;
                    stats.rollouts += ends.len();
                    stats.successes += ends.iter().filter(|n| n.success).count();
                    stats.mean_reward += rewards.iter().sum::<f64>();
                    let Some(advantages) = advantages else {
                        stats.without_signal += 1;
                        continue;
                    };
                    for (leaf, advantage) in ends.iter().zip(advantages) {
                        trajectory(
                            &mut out, &mut tree, &sampled, origin, leaf.id, "grpo", advantage,
                        )?;
                    }
                }
                ExportData::Iwm => {
                    for n in nodes.iter().filter(|n| n.parent.is_some()) {
                        let path = tree.path(n.id);
                        out.push(&Record {
                            chat: Chat::new(world_model_messages(&env, &path), args.weights),
                            weight: 1.0,
                            kind: "iwm",
                            source: origin.at(n.id),
                        })?;
                    }
                }
            }
        }
    }
    if let Some(g) = &mut out.summary.groups {
        g.mean_reward /= g.rollouts.max(1) as f64;
    }
    // Groups that all scored the same are a normal GRPO iteration: no step.
    let no_signal = out.summary.groups.as_ref().is_some_and(|g| g.groups > 0);
    if out.summary.records == 0 && !no_signal && !args.allow_empty {
        bail!(
            "no records: the runs have no {} (try more tasks or a larger --budget)",
            nothing_to_export(args.data)
        );
    }
    write_atomic(&args.out, out.text.as_bytes())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(out.summary)
}

/// Predict the observation at the end of `path` from what came before.
fn world_model_messages(env: &Environment, path: &[&Node]) -> Vec<OutMessage> {
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
                env.info().name,
                env.info().action_hint
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
        ExportData::Grpo => "chat-grpo.jsonl",
    };
    match runs {
        [one] => Ok(one.join(name)),
        _ => bail!("with several runs, say where to write with --out"),
    }
}
