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
//!
//! Each kind has its file (`leafe`, `rft`, `iwm`, `grpo`) with the records of
//! one task; `record` holds what they share; this file reads the runs and
//! writes the output.

mod grpo;
mod iwm;
mod leafe;
mod record;
mod rft;

use super::open::{OpenRun, open_run, task_of};
use crate::agent::prompt::PromptConfig;
use crate::env::runtime::Runtime;
use crate::tree::Method;
use crate::tree::path::CorrectionCriterion;
use crate::util::fs::write_atomic;
use crate::util::rng::SplitMix;
use crate::util::setting::{BadSetting, check};
use anyhow::{Context as _, Result, bail};
use record::{Shape, TaskOrigin, TaskTree, Writer};
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

impl ExportArgs {
    /// Every setting in its range; the error names the field.
    pub fn validate(&self) -> Result<(), BadSetting> {
        check(!self.runs.is_empty(), "runs", "name no run directory")?;
        check(
            (0.0..=1.0).contains(&self.reh_fraction),
            "reh_fraction",
            "must be in [0, 1]",
        )?;
        check(
            self.beta >= 0.0 && self.beta.is_finite(),
            "beta",
            "must be a number >= 0",
        )
    }
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

pub fn export(runtime: &Arc<Runtime>, args: &ExportArgs) -> Result<ExportSummary> {
    args.validate()?;
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
            let origin = TaskOrigin {
                run: &run_name,
                header: &header,
                task: *index,
            };
            match args.data {
                ExportData::Leafe => {
                    let here: Vec<u32> = rehearsed
                        .iter()
                        .filter(|(t, _)| t == index)
                        .map(|&(_, leaf)| leaf)
                        .collect();
                    leafe::write_task(&mut out, &mut tree, &shape, origin, args, &here)?
                }
                ExportData::Rft => rft::write_task(&mut out, &mut tree, &shape, origin)?,
                ExportData::Grpo => grpo::write_task(&mut out, &mut tree, &shape, origin)?,
                ExportData::Iwm => iwm::write_task(&mut out, &tree, origin, args.weights)?,
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
