//! The prompts a model policy is asked with, and how its answers become
//! actions. The prompt is built from the environment's own description (its
//! name and action hint), the history of observations and actions (the
//! oldest turns dropped, a block at a time, to fit a budget), and the
//! lessons (experiences) in force, after everything else, so that the
//! prompt of a revised action repeats the original's up to the branch point. `export` writes training data in exactly this form, so that what
//! is learned is what is asked at test time.

use super::Context;
use crate::env::contract::EnvInfo;
use crate::llm::Message;
use anyhow::{Context as _, Result, bail};

/// The system prompt; `{name}`, `{action_hint}` and `{answer_format}` are
/// filled in.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are an agent acting in the environment \"{name}\".\n\
{action_hint}\n\
{answer_format}";

/// How the model's answers become actions, per environment kind.
const ACTION_LINE_FORMAT: &str =
    "Think briefly if you need to, then give your action on the last line as `Action: <action>`.";
const FREE_FORMAT: &str = "Your whole reply is your action.";

pub use crate::tree::PromptConfig;

// Defined here, not next to the struct: the default texts are the agent's.
impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            system: DEFAULT_SYSTEM_PROMPT.to_string(),
            history_chars: 24_000,
            action_line_format: ACTION_LINE_FORMAT.to_string(),
            free_format: FREE_FORMAT.to_string(),
        }
    }
}

impl PromptConfig {
    /// A system prompt template from a file; it must use `{action_hint}`.
    pub fn with_template_file(mut self, path: &std::path::Path) -> Result<PromptConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the prompt template {}", path.display()))?;
        if !text.contains("{action_hint}") {
            bail!(
                "the prompt template {} does not use {{action_hint}}: the model would not know \
                 the environment's actions",
                path.display()
            );
        }
        self.system = text;
        Ok(self)
    }
}

/// Older turns leave the history this many at a time. The window then
/// starts at the same turn for several steps running, so consecutive
/// prompts keep the same beginning, which a server's prefix cache reuses;
/// moving it by one turn a step would change the prompt right after the
/// task and leave nothing to reuse.
pub const HISTORY_BLOCK_TURNS: usize = 8;

/// Valid actions listed in a prompt at most: ScienceWorld has thousands
/// (every verb with every object in view), which would crowd out the rest.
pub const MAX_LISTED_ACTIONS: usize = 200;

/// The chat for the current state of `ctx`.
pub fn messages(prompt: &PromptConfig, ctx: &Context) -> Vec<Message> {
    build(prompt, ctx, true)
}

/// The chat the policy was asked with at the current state of `ctx`, with
/// the lessons left out and nothing else changed: the history window is the
/// one the lessons' length left room for. `export`'s corrections are this.
pub fn messages_without_lessons(prompt: &PromptConfig, ctx: &Context) -> Vec<Message> {
    build(prompt, ctx, false)
}

fn build(prompt: &PromptConfig, ctx: &Context, show_lessons: bool) -> Vec<Message> {
    let format = if ctx.admissible.is_some() {
        &prompt.action_line_format
    } else {
        &prompt.free_format
    };
    let system = fill(&prompt.system, ctx.info, format);
    let action_line = ctx.admissible.is_some();
    let mut turns: Vec<(String, Option<String>)> = Vec::new();
    for pair in ctx.path.windows(2) {
        let action = pair[1].action.as_deref().unwrap_or("");
        turns.push((
            pair[0].observation.clone(),
            Some(answer_text(action, action_line)),
        ));
    }
    let mut last = ctx.current().observation.clone();
    match &ctx.admissible {
        Some(actions) if actions.len() > MAX_LISTED_ACTIONS => last.push_str(&format!(
            "\n\n({} valid actions, too many to list: answer in the forms described above)",
            actions.len()
        )),
        Some(actions) => last.push_str(&format!("\n\nValid actions: {}", actions.join(", "))),
        None => {}
    }
    let mut lessons = String::new();
    if !ctx.experiences.is_empty() {
        lessons.push_str("\n\nLessons from earlier attempts:");
        for e in ctx.experiences {
            lessons.push_str(&format!("\n- {}", e.text));
        }
    }
    let without_lessons = last.len();
    last.push_str(&lessons);
    turns.push((last, None));

    // Keep the first observation (the task) and as many recent turns as fit.
    let size = |t: &(String, Option<String>)| t.0.len() + t.1.as_ref().map_or(0, String::len);
    let mut budget = prompt
        .history_chars
        .saturating_sub(size(&turns[0]) + system.len());
    let mut fits_from = turns.len();
    while fits_from > 1 && size(&turns[fits_from - 1]) <= budget {
        budget -= size(&turns[fits_from - 1]);
        fits_from -= 1;
    }
    // Drop whole blocks of the oldest turns (see HISTORY_BLOCK_TURNS); the
    // current observation is always sent, even over budget.
    let dropped = (fits_from - 1).div_ceil(HISTORY_BLOCK_TURNS) * HISTORY_BLOCK_TURNS;
    let keep_from = (1 + dropped).min(turns.len() - 1).max(1);
    if !show_lessons && let Some(last) = turns.last_mut() {
        last.0.truncate(without_lessons);
    }

    let mut out = vec![Message::new("system", system)];
    let push_turn = |out: &mut Vec<Message>, (obs, action): &(String, Option<String>)| {
        out.push(Message::new("user", obs.clone()));
        if let Some(a) = action {
            out.push(Message::new("assistant", a.clone()));
        }
    };
    if turns.len() == 1 {
        push_turn(&mut out, &turns[0]);
        return out;
    }
    push_turn(&mut out, &turns[0]);
    if keep_from > 1 {
        let dropped = keep_from - 1;
        if let Some(m) = out.last_mut() {
            m.content
                .push_str(&format!("\n\n[{dropped} earlier steps are left out]"));
        }
    }
    for turn in &turns[keep_from..] {
        push_turn(&mut out, turn);
    }
    out
}

/// How an action is written as the model's answer: `Action: X` where the
/// environment lists its actions, the action itself (e.g. a program) where not.
pub fn answer_text(action: &str, action_line: bool) -> String {
    if action_line {
        format!("Action: {action}")
    } else {
        action.to_string()
    }
}

fn fill(template: &str, info: &EnvInfo, format: &str) -> String {
    template
        .replace("{name}", &info.name)
        .replace("{action_hint}", &info.action_hint)
        .replace("{answer_format}", format)
}

/// The action in a model's `answer`. With a list of valid actions: the
/// last `Action:` line, else the last valid action named in the answer,
/// matched case-insensitively; otherwise (free-form environments such as
/// code) the answer itself, reasoning blocks removed.
pub fn parse_action(answer: &str, admissible: Option<&[String]>) -> String {
    let answer = strip_think(answer);
    let Some(valid) = admissible else {
        return answer.trim().to_string();
    };
    let canonical = |s: &str| {
        let s = s.trim().trim_matches(|c: char| "`*\"'.".contains(c)).trim();
        valid.iter().find(|v| v.eq_ignore_ascii_case(s)).cloned()
    };
    let action_line = answer.lines().rev().find_map(|line| {
        let line = line.trim().trim_start_matches(['*', '#', '-', ' ']);
        let lower = line.to_ascii_lowercase();
        lower
            .strip_prefix("action:")
            .map(|_| line[7..].trim().to_string())
    });
    if let Some(found) = action_line.as_deref().and_then(canonical) {
        return found;
    }
    // The last valid action mentioned as a word.
    let lower = answer.to_ascii_lowercase();
    let mut best: Option<(usize, &String)> = None;
    for v in valid {
        let needle = v.to_ascii_lowercase();
        for (at, _) in lower.match_indices(&needle) {
            let before = lower[..at].chars().next_back();
            let after = lower[at + needle.len()..].chars().next();
            let bounded = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
            if bounded(before) && bounded(after) && best.is_none_or(|(b, _)| at >= b) {
                best = Some((at, v));
            }
        }
    }
    if let Some((_, v)) = best {
        return v.clone();
    }
    // Nothing valid: hand the environment what was said, for it to reject.
    let said =
        action_line.unwrap_or_else(|| answer.trim().lines().last().unwrap_or("").to_string());
    leafe_judge::clip(said.trim(), 200)
}

fn strip_think(answer: &str) -> String {
    let mut out = answer.to_string();
    while let Some(start) = out.find("<think>") {
        match out[start..].find("</think>") {
            Some(end) => out.replace_range(start..start + end + "</think>".len(), ""),
            None => {
                out.truncate(start);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Node;

    fn moves() -> Vec<String> {
        ["up", "down", "left", "right"].map(String::from).to_vec()
    }

    #[test]
    fn parses_actions_from_free_text() {
        let m = moves();
        let p = |a: &str| parse_action(a, Some(&m));
        assert_eq!(p("Action: up"), "up");
        assert_eq!(p("I think left is bad.\n**Action:** `Right`"), "right");
        assert_eq!(p("<think>maybe down</think>I go up."), "up");
        assert_eq!(p("first left, then finally down"), "down");
        assert_eq!(p("upward!"), "upward!");
        assert_eq!(p("Action: jump"), "jump");
        assert_eq!(p(""), "");
        assert_eq!(
            parse_action(" ```python\nprint(1)\n```\n", None),
            "```python\nprint(1)\n```"
        );
    }

    #[test]
    fn long_action_lists_are_counted_not_listed() {
        let info = EnvInfo {
            name: "world".into(),
            version: "1".into(),
            splits: vec![],
            max_steps: 10,
            action_hint: "Act with: look at OBJ.".into(),
        };
        let root = Node::root(0, "You see things.".into());
        let path = [&root];
        let ask = |n: usize| {
            let actions: Vec<String> = (0..n).map(|i| format!("look at thing {i}")).collect();
            let ctx = Context {
                info: &info,
                path: &path,
                experiences: &[],
                admissible: Some(actions.clone()),
                expert: None,
            };
            let last = messages(&PromptConfig::default(), &ctx)
                .pop()
                .unwrap()
                .content;
            // Parsing still checks against the whole list.
            assert_eq!(
                parse_action("Action: look at thing 0", Some(&actions)),
                "look at thing 0"
            );
            last
        };
        let listed = ask(MAX_LISTED_ACTIONS);
        assert!(
            listed.contains("Valid actions: look at thing 0, "),
            "{listed}"
        );
        let counted = ask(MAX_LISTED_ACTIONS + 1);
        assert!(!counted.contains("look at thing 0"), "{counted}");
        assert!(
            counted.contains("(201 valid actions, too many to list"),
            "{counted}"
        );
    }

    #[test]
    fn the_history_drops_whole_blocks_so_consecutive_prompts_share_their_start() {
        let info = EnvInfo {
            name: "world".into(),
            version: "1".into(),
            splits: vec![],
            max_steps: 100,
            action_hint: "Move.".into(),
        };
        let mut nodes = vec![Node::root(0, "The task: reach the goal.".into())];
        for i in 1..60u32 {
            let mut n = nodes[0].clone();
            n.id = i;
            n.parent = Some(i - 1);
            n.action = Some(moves()[i as usize % 4].clone());
            n.observation = format!("step {i}: {}", "you see a wall. ".repeat(6));
            nodes.push(n);
        }
        let prompt = PromptConfig {
            history_chars: 2_000,
            ..PromptConfig::default()
        };
        let ask = |t: usize| {
            let path: Vec<&Node> = nodes[..t].iter().collect();
            let ctx = Context {
                info: &info,
                path: &path,
                experiences: &[],
                admissible: Some(moves()),
                expert: None,
            };
            messages(&prompt, &ctx)
        };
        let mut restarts = 0;
        for t in 2..nodes.len() {
            let (now, next) = (ask(t), ask(t + 1));
            let first = &now[1].content;
            if let Some(at) = first.find("earlier steps are left out]") {
                let dropped: usize = first[..at]
                    .rsplit('[')
                    .next()
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                assert_eq!(dropped % HISTORY_BLOCK_TURNS, 0, "{first}");
            }
            // The next prompt repeats this one but for the current turn.
            let kept = now.len() - 1;
            if next.len() < kept || next[..kept] != now[..kept] {
                restarts += 1;
            }
            let chars: usize = now.iter().map(|m| m.content.len()).sum();
            assert!(
                chars < prompt.history_chars + 400,
                "step {t}: {chars} chars"
            );
        }
        // One turn at a time would change the start at nearly every step.
        assert!((1..=8).contains(&restarts), "{restarts} restarts");
    }
}
