//! `--data iwm`: implicit world modelling (Early Experience): from the
//! history and an action, predict the next observation, for every
//! transition.

use super::WeightLayout;
use super::record::{Chat, ChatRecord, OutMessage, TaskOrigin, TaskTree, Writer};
use crate::env::environment::Environment;
use crate::tree::Node;
use anyhow::Result;

/// One task's records: one per transition of its tree.
pub(super) fn write_task(
    out: &mut Writer,
    tree: &TaskTree,
    origin: TaskOrigin,
    weights: WeightLayout,
) -> Result<()> {
    for n in tree.nodes.iter().filter(|n| n.parent.is_some()) {
        let path = tree.path(n.id);
        out.push(&ChatRecord {
            chat: Chat::new(world_model_messages(tree.env, &path), weights),
            weight: 1.0,
            kind: "iwm",
            source: origin.at(n.id),
        })?;
    }
    Ok(())
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
