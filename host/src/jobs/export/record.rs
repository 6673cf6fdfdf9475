//! What every kind of export writes: the record and its conversation, a
//! task's tree with the admissible actions replayed, the prompt rebuilt at
//! a node, and the writer that counts what it wrote.

use super::{ExportSummary, ExportTarget, WeightLayout};
use crate::agent::prompt::{PromptConfig, answer_text, messages, messages_without_lessons};
use crate::agent::{Context, Experience};
use crate::env::contract::Task;
use crate::env::environment::Environment;
use crate::env::session::SessionError;
use crate::llm::Message;
use crate::tree::path::ancestors;
use crate::tree::{Header, Node};
use anyhow::{Context as _, Result, anyhow};
use serde::Serialize;
use std::collections::BTreeMap;

/// One line of the output: a conversation, its weight in the loss, what
/// kind of data it is and where it comes from.
#[derive(Serialize)]
pub(super) struct ChatRecord<'a> {
    #[serde(flatten)]
    pub chat: Chat,
    pub weight: f64,
    pub kind: &'static str,
    pub source: RecordSource<'a>,
}

/// A record's conversation in one of the [`WeightLayout`]s.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Chat {
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
    pub fn new(mut messages: Vec<OutMessage>, layout: WeightLayout) -> Chat {
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
pub(super) struct OutMessage {
    pub role: String,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u8>,
}

/// Where a record comes from: the run, and the node of its task's tree.
#[derive(Serialize)]
pub(super) struct RecordSource<'a> {
    run: &'a str,
    env: &'a str,
    split: &'a str,
    task: u32,
    node: u32,
}

/// A task's tree with the admissible actions of its states, found by
/// replaying the recorded actions (the log does not keep them).
pub(super) struct TaskTree<'a> {
    pub env: &'a Environment,
    pub task: Task,
    pub nodes: &'a [Node],
    pub admissible: BTreeMap<u32, Option<Vec<String>>>,
}

impl<'a> TaskTree<'a> {
    pub fn path(&self, id: u32) -> Vec<&'a Node> {
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
    pub fn prompt(
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
pub(super) struct Shape {
    pub prompt: PromptConfig,
    pub target: ExportTarget,
    pub weights: WeightLayout,
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
pub(super) struct Writer {
    pub text: String,
    pub summary: ExportSummary,
}

impl Writer {
    pub fn push(&mut self, record: &ChatRecord) -> Result<()> {
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
pub(super) struct TaskOrigin<'a> {
    pub run: &'a str,
    pub header: &'a Header,
    pub task: u32,
}

impl<'a> TaskOrigin<'a> {
    pub fn at(&self, node: u32) -> RecordSource<'a> {
        RecordSource {
            run: self.run,
            env: &self.header.env,
            split: &self.header.split,
            task: self.task,
            node,
        }
    }
}

/// One record per step of the trajectory ending at `leaf`.
pub(super) fn trajectory(
    out: &mut Writer,
    tree: &mut TaskTree,
    shape: &Shape,
    origin: TaskOrigin,
    leaf: u32,
    kind: &'static str,
    weight: f64,
) -> Result<()> {
    let path = tree.path(leaf);
    for t in 1..path.len() {
        out.push(&ChatRecord {
            chat: tree.prompt(shape, &path[..t], path[t], &[], false)?,
            weight,
            kind,
            source: origin.at(path[t].id),
        })?;
    }
    Ok(())
}
