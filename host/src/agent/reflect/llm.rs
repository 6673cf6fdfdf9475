//! Reflection by the model: shown a failed attempt, it names the step that
//! went wrong and a short lesson, as JSON `{"step": tau, "experience": "..."}`.
//!
//! A reply that is not such JSON gets one repair request; if that fails
//! too, or the endpoint fails, the rule-based reflector decides, and the
//! lesson says so (`[rule-based fallback: ...]`), so the tree records what
//! happened.

use super::Reflector;
use super::rule::RuleReflector;
use crate::agent::Experience;
use crate::env::contract::EnvInfo;
use crate::llm::{ChatClient, Message};
use crate::tree::Node;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The instructions; `{name}` and `{action_hint}` are filled in.
const SYSTEM: &str = "You review a failed attempt in the environment \"{name}\".\n\
The agent's instructions were:\n{action_hint}\n\n\
Find the step whose action was the mistake that made the attempt fail, and write a short, \
actionable lesson: what went wrong and what to do instead at that point. Reply with JSON only: \
{\"step\": <the number of that step>, \"experience\": \"<the lesson>\"}";

/// The mid-rollout question (`--reflect-every`).
const CHECK: &str = "The attempt is not over yet. If one of its steps so far was a mistake, reply \
with JSON only: {\"step\": <the number of that step>, \"experience\": \"<the lesson>\"}. If \
nothing has gone wrong, reply {\"step\": null}.";

const REPAIR: &str = "That reply was not the JSON asked for. Reply with exactly one JSON object \
{\"step\": <step number>, \"experience\": \"<lesson>\"} and nothing else.";

/// Characters of the attempt shown to the model (about 4 per token).
const TRANSCRIPT_CHARS: usize = 24_000;

/// The model as a reflector.
pub struct LlmReflector {
    pub client: Arc<ChatClient>,
    pub info: EnvInfo,
    pub seed: u64,
    pub stats: Arc<ReflectionStats>,
}

/// How the model's reflections went, counted across all tasks of a run.
#[derive(Debug, Default)]
pub struct ReflectionStats {
    asked: AtomicU64,
    first_try: AtomicU64,
    after_repair: AtomicU64,
    no_mistake: AtomicU64,
    fell_back: AtomicU64,
}

/// [`ReflectionStats`] read at one moment (for `summary.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReflectionCounts {
    /// Reflections and mid-rollout checks asked of the model.
    pub asked: u64,
    /// Usable JSON on the first reply.
    pub json_first_try: u64,
    /// Usable JSON only after the repair request.
    pub json_after_repair: u64,
    /// Mid-rollout checks that found no mistake.
    pub no_mistake: u64,
    /// No usable answer: the rule-based lesson was used (or, for a check,
    /// the rollout went on).
    pub fell_back: u64,
}

impl ReflectionStats {
    pub fn counts(&self) -> ReflectionCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ReflectionCounts {
            asked: get(&self.asked),
            json_first_try: get(&self.first_try),
            json_after_repair: get(&self.after_repair),
            no_mistake: get(&self.no_mistake),
            fell_back: get(&self.fell_back),
        }
    }
}

/// A parsed reflection: the bad step (1-based action index) and the lesson.
#[derive(Debug, PartialEq)]
pub struct Reflection {
    pub step: usize,
    pub experience: String,
}

impl Reflector for LlmReflector {
    fn reflect(&mut self, path: &[&Node]) -> Option<Experience> {
        if path.len() < 2 {
            return None;
        }
        match self.ask(path, false) {
            Ok(found) => found,
            Err(why) => {
                let mut fallback = RuleReflector.reflect(path)?;
                fallback.text = format!("[rule-based fallback: {why}] {}", fallback.text);
                Some(fallback)
            }
        }
    }

    fn check(&mut self, path: &[&Node], _window: usize) -> Option<Experience> {
        if path.len() < 2 {
            return None;
        }
        // A check that cannot be answered just lets the rollout go on.
        self.ask(path, true).ok().flatten()
    }
}

impl LlmReflector {
    /// Ask (and once re-ask) the model; `Ok(None)` when a mid-rollout check
    /// finds no mistake, `Err` with the reason when no usable answer came.
    fn ask(&mut self, path: &[&Node], midway: bool) -> Result<Option<Experience>, String> {
        self.stats.asked.fetch_add(1, Ordering::Relaxed);
        let answer = self.ask_model(path, midway);
        let counter = match &answer {
            Ok(None) => &self.stats.no_mistake,
            Ok(Some((_, 0))) => &self.stats.first_try,
            Ok(Some(_)) => &self.stats.after_repair,
            Err(_) => &self.stats.fell_back,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        answer.map(|found| found.map(|(experience, _)| experience))
    }

    /// The model's answer and on which attempt (0: first, 1: after repair).
    fn ask_model(
        &mut self,
        path: &[&Node],
        midway: bool,
    ) -> Result<Option<(Experience, usize)>, String> {
        let steps = path.len() - 1;
        let mut question = transcript(path, midway);
        if midway {
            question.push_str("\n\n");
            question.push_str(CHECK);
        }
        let mut messages = vec![
            Message::new(
                "system",
                SYSTEM
                    .replace("{name}", &self.info.name)
                    .replace("{action_hint}", &self.info.action_hint),
            ),
            Message::new("user", question),
        ];
        let mut why = String::new();
        for attempt in 0..2 {
            self.seed = self.seed.wrapping_add(1);
            let reply = match self.client.complete(&messages, 1, Some(self.seed >> 1)) {
                Ok(answers) => answers.into_iter().next().unwrap_or_default(),
                Err(e) => {
                    why = format!("the endpoint failed: {e}");
                    break;
                }
            };
            if midway && says_no_mistake(&reply) {
                return Ok(None);
            }
            match parse_reflection(&reply, steps) {
                Ok(r) => {
                    let (before, bad) = (path[r.step - 1], path[r.step]);
                    let experience = Experience {
                        node: before.id,
                        obs_sha256: before.obs_sha256.clone(),
                        avoid: bad.action.clone(),
                        text: r.experience,
                    };
                    return Ok(Some((experience, attempt)));
                }
                Err(e) => {
                    why = format!("unusable reply ({e}): {:?}", leafe_judge::clip(&reply, 120));
                    if attempt == 0 {
                        messages.push(Message::new("assistant", reply));
                        messages.push(Message::new("user", REPAIR));
                    }
                }
            }
        }
        Err(why)
    }
}

/// The outermost `{...}` of `reply` as JSON (code fences and prose around
/// it allowed).
fn json_object(reply: &str) -> Result<serde_json::Value, String> {
    let (Some(start), Some(end)) = (reply.find('{'), reply.rfind('}')) else {
        return Err("no JSON object".into());
    };
    if end < start {
        return Err("no JSON object".into());
    }
    serde_json::from_str(&reply[start..=end]).map_err(|e| format!("invalid JSON: {e}"))
}

/// `{"step": null}` (or no step at all) in a mid-rollout answer.
fn says_no_mistake(reply: &str) -> bool {
    json_object(reply).is_ok_and(|v| v.get("step").is_none_or(serde_json::Value::is_null))
}

/// The attempt as numbered steps, the middle left out if it is too long.
fn transcript(path: &[&Node], midway: bool) -> String {
    let mut parts = vec![format!(
        "Step 0 (start). Observation:\n{}",
        path[0].observation
    )];
    for (t, node) in path.iter().enumerate().skip(1) {
        parts.push(format!(
            "Step {t}. Action: {}\nObservation (reward {}):\n{}",
            node.action.as_deref().unwrap_or(""),
            node.reward,
            node.observation
        ));
    }
    let total: usize = parts.iter().map(String::len).sum();
    if total > TRANSCRIPT_CHARS && parts.len() > 2 {
        // Keep the start and as much of the end as fits.
        let mut kept_end = Vec::new();
        let mut budget = TRANSCRIPT_CHARS.saturating_sub(parts[0].len());
        for part in parts[1..].iter().rev() {
            if part.len() > budget {
                break;
            }
            budget -= part.len();
            kept_end.push(part.clone());
        }
        kept_end.reverse();
        let dropped = parts.len() - 1 - kept_end.len();
        let mut out = vec![parts[0].clone(), format!("[{dropped} steps left out]")];
        out.extend(kept_end);
        parts = out;
    }
    let steps = path.len() - 1;
    if midway {
        return format!(
            "{}\n\nThe attempt has taken {steps} steps so far.",
            parts.join("\n\n")
        );
    }
    format!(
        "{}\n\nThe attempt failed after {steps} steps. Which step (1-{steps}) was the mistake?",
        parts.join("\n\n")
    )
}

/// `{"step": n, "experience": "..."}` anywhere in `reply` (code fences and
/// surrounding prose allowed), with `1 <= n <= steps`.
pub fn parse_reflection(reply: &str, steps: usize) -> Result<Reflection, String> {
    let value = json_object(reply)?;
    let step = match &value["step"] {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or("no integer \"step\"")? as usize;
    if step == 0 || step > steps {
        return Err(format!("step {step} is not between 1 and {steps}"));
    }
    let experience = value["experience"]
        .as_str()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or("no \"experience\" text")?;
    Ok(Reflection {
        step,
        experience: leafe_judge::clip(experience, 1000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reflections_robustly() {
        let ok = |s: &str| parse_reflection(s, 5);
        assert_eq!(
            ok("{\"step\": 3, \"experience\": \"Do not push the box left.\"}"),
            Ok(Reflection {
                step: 3,
                experience: "Do not push the box left.".into()
            })
        );
        assert_eq!(
            ok("Sure!\n```json\n{\"step\": \"2\", \"experience\": \" x \"}\n```").unwrap(),
            Reflection {
                step: 2,
                experience: "x".into()
            }
        );
        assert!(ok("no json").is_err());
        assert!(ok("{\"step\": 9, \"experience\": \"x\"}").is_err());
        assert!(ok("{\"step\": 0, \"experience\": \"x\"}").is_err());
        assert!(ok("{\"step\": 1, \"experience\": \"\"}").is_err());
        assert!(ok("{\"step\": 1}").is_err());
        assert!(ok("{step: 1}").is_err());
    }
}
