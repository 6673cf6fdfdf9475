//! Sokoban as a leafe environment: the worked example of the guest SDK.
//!
//! Levels are generated from `(split, index, size, boxes)` (see
//! [`generate`]); the task seed is unused because Sokoban has no chance in
//! it. Rewards follow gym-sokoban and RAGEN: -0.1 per step, +1 for pushing a
//! box onto a target, -1 for pushing one off, +10 when every box is on a
//! target (which terminates the episode). A push that makes the level
//! unsolvable (a box in a corner, against a wall with no target along it, or
//! jammed in a 2x2 block) is reported in the observation and as
//! `info["dead-end"]`; the episode goes on, as in gym-sokoban.

pub mod board;
pub mod deadlock;
pub mod generate;
pub mod solver;

use board::{Board, Dir, Moved};
use leafe_guest::{EnvError, EnvInfo, Environment, Rng, Step, Task, json};
use serde::{Deserialize, Serialize};

const ACTION_HINT: &str = "Push every box onto a target. Answer with one move: up, down, left or \
right. Legend: # wall, _ floor, O target, X box, * box on a target, P you, S you on a target. \
Rows and columns (rNcM) count from 1 at the top left. You can push one box at a time and never \
pull: a box in a corner or against a wall with no target along it is stuck for good.";

/// The episode: the board, the cells a box can still be saved on, and the
/// dead end, once there is one.
#[derive(Serialize, Deserialize)]
pub struct Sokoban {
    board: Board,
    live: Vec<bool>,
    dead_end: Option<String>,
}

fn params(task: &Task) -> Result<generate::Params, EnvError> {
    let size = task.option("size").unwrap_or("7x7");
    let (w, h) = match size.split_once('x') {
        Some((w, h)) => (w.trim().parse::<u16>(), h.trim().parse::<u16>()),
        None => (size.trim().parse::<u16>(), size.trim().parse::<u16>()),
    };
    let (Ok(width), Ok(height)) = (w, h) else {
        return Err(EnvError::BadTask(format!(
            "option size={size:?}: expected WxH, e.g. 7x7"
        )));
    };
    if !(5..=11).contains(&width) || !(5..=11).contains(&height) {
        return Err(EnvError::BadTask(format!(
            "option size={size}: each side must be 5 to 11"
        )));
    }
    let boxes: usize = task.option_or("boxes", 2)?;
    if !(1..=4).contains(&boxes) {
        return Err(EnvError::BadTask(format!(
            "option boxes={boxes}: must be 1 to 4"
        )));
    }
    Ok(generate::Params {
        width,
        height,
        boxes,
    })
}

impl Sokoban {
    /// The level of `task`, as `reset` builds it.
    pub fn new(task: &Task) -> Result<(Self, usize), EnvError> {
        let p = params(task)?;
        let label = format!(
            "sokoban/{}/{}x{}/{}",
            task.split, p.width, p.height, p.boxes
        );
        let mut rng = Rng::from_parts(&label, &[u64::from(task.index)]);
        let level = generate::generate(p, &mut rng).map_err(EnvError::Internal)?;
        let live = deadlock::live_cells(&level.board);
        Ok((
            Sokoban {
                board: level.board,
                live,
                dead_end: None,
            },
            level.optimal_moves,
        ))
    }

    pub fn board(&self) -> &Board {
        &self.board
    }

    fn observation(&self, message: &str) -> String {
        format!("{}{message}", self.board.render())
    }
}

impl Environment for Sokoban {
    const OPTIONS: &'static [&'static str] = &["size", "boxes"];

    fn info() -> EnvInfo {
        EnvInfo::new("sokoban", "0.1.0", ACTION_HINT)
            .split("train", 100_000)
            .split("test", 1_000)
            .max_steps(100)
    }

    fn reset(task: &Task) -> Result<(Self, String), EnvError> {
        let (env, _) = Sokoban::new(task)?;
        let n = env.board.boxes.len();
        let obs = env.observation(&format!(
            "Push the {n} box{} (X) onto the target{} (O).",
            if n == 1 { "" } else { "es" },
            if n == 1 { "" } else { "s" }
        ));
        Ok((env, obs))
    }

    fn step(&mut self, action: &str) -> Step {
        let Some(dir) = Dir::parse(action) else {
            let shown: String = action.chars().take(40).collect();
            return Step::new(
                self.observation(&format!(
                    "Invalid action '{shown}': answer with up, down, left or right."
                )),
                -0.1,
            )
            .invalid_action();
        };
        let mut reward = -0.1;
        let mut new_dead_end = None;
        let message = match self.board.apply(dir) {
            Moved::Blocked => format!("You cannot move {}: the way is blocked.", dir.name()),
            Moved::Walked => format!("You moved {}.", dir.name()),
            Moved::Pushed { from, to } => {
                let (was, now) = (self.board.is_target(from), self.board.is_target(to));
                reward += f64::from(i8::from(now) - i8::from(was));
                if self.dead_end.is_none() {
                    new_dead_end = deadlock::explain(&self.board, &self.live, to);
                }
                match (was, now) {
                    (false, true) => format!("You pushed a box {} onto a target.", dir.name()),
                    (true, false) => format!("You pushed a box {} off a target.", dir.name()),
                    _ => format!(
                        "You pushed a box {} to {}.",
                        dir.name(),
                        self.board.cell_name(to)
                    ),
                }
            }
        };
        if self.board.solved() {
            let obs = self.observation(&format!("{message} Solved: every box is on a target."));
            return Step::new(obs, reward + 10.0).terminated().success(true);
        }
        let mut text = message;
        if let Some(why) = new_dead_end {
            text = format!("{text} Deadlock: {why}; the level can no longer be solved.");
            self.dead_end = Some(why);
        }
        let mut step = Step::new(self.observation(&text), reward)
            .with_info("boxes-on-targets", json!(self.board.boxes_on_targets()));
        if let Some(why) = &self.dead_end {
            step = step.dead_end(why.clone());
        }
        step
    }

    fn admissible_actions(&self) -> Option<Vec<String>> {
        Some(Dir::ALL.iter().map(|d| d.name().to_string()).collect())
    }

    /// The first move of a shortest solution from here (none in a dead end).
    fn expert_action(&self) -> Option<String> {
        match solver::solve(&self.board, &self.live, solver::DEFAULT_NODE_LIMIT) {
            solver::Solution::Moves(moves) => moves.first().map(|d| d.name().to_string()),
            _ => None,
        }
    }
}

leafe_guest::export_environment!(Sokoban);

#[cfg(test)]
mod tests {
    use super::*;
    use leafe_guest::Harness;

    fn start(index: u32) -> Harness<Sokoban> {
        let mut h = Harness::new();
        h.reset(&Task::new("test", index, 0)).unwrap();
        h
    }

    #[test]
    fn the_expert_solves_levels_optimally_with_the_right_rewards() {
        for index in 0..20 {
            let (env, optimal) = Sokoban::new(&Task::new("test", index, 0)).unwrap();
            let (boxes, on_at_start) = (env.board.boxes.len(), env.board.boxes_on_targets());
            let mut h = start(index);
            let (mut total, mut steps, mut last) = (0.0, 0, None);
            while let Some(a) = h.expert_action() {
                let out = h.step(&a).unwrap();
                total += out.reward;
                steps += 1;
                last = Some(out);
            }
            let last = last.unwrap();
            assert!(last.terminated && !last.truncated);
            assert_eq!(last.info_json()["success"], true);
            assert_eq!(steps, optimal, "task {index}");
            // +1 per box that ends on a target, +10, -0.1 a step.
            let expected = 10.0 + (boxes - on_at_start) as f64 - 0.1 * steps as f64;
            assert!(
                (total - expected).abs() < 1e-9,
                "task {index}: {total} vs {expected}"
            );
        }
    }

    #[test]
    fn rewards_for_pushes_on_and_off_targets() {
        let board = Board::parse("#######\n#P_X_O#\n#__X_O#\n#_____#\n#######\n").unwrap();
        let live = deadlock::live_cells(&board);
        let mut env = Sokoban {
            board,
            live,
            dead_end: None,
        };
        let r = |s: Step| (s.reward * 10.0).round() / 10.0;
        assert_eq!(r(env.step("right")), -0.1);
        assert_eq!(r(env.step("right")), -0.1, "box to c5");
        let on = env.step("right");
        assert_eq!(r(on.clone()), 0.9, "box onto the target");
        assert!(on.observation.contains("onto a target"));
        assert_eq!(r(env.step("LEFT")), -0.1);
        let invalid = env.step("jump");
        assert_eq!(invalid.info["invalid-action"], true);
        assert_eq!(r(invalid), -0.1);
    }

    #[test]
    fn a_corner_push_is_reported_as_a_dead_end() {
        let board = Board::parse("######\n#____#\n#_X__#\n#__P_#\n#___O#\n######\n").unwrap();
        let live = deadlock::live_cells(&board);
        let mut env = Sokoban {
            board,
            live,
            dead_end: None,
        };
        assert!(!env.step("up").info.contains_key("dead-end"));
        // Pushing the box left puts it against the left wall, which has no target.
        let out = env.step("left");
        assert!(out.info.contains_key("dead-end"), "{out:?}");
        assert!(
            out.observation.contains("Deadlock: the box at r3c2"),
            "{}",
            out.observation
        );
        assert!(env.expert_action().is_none());
        // The dead end stays reported on later steps.
        assert!(env.step("down").info.contains_key("dead-end"));
    }

    #[test]
    fn truncation_snapshot_and_options() {
        let mut h = Harness::<Sokoban>::new();
        let task = Task::new("train", 3, 0)
            .with_option("max-steps", "3")
            .with_option("size", "6x6");
        h.reset(&task).unwrap();
        assert!(!h.step("up").unwrap().truncated);
        let snap = h.snapshot().unwrap();
        let a = h.step("left").unwrap();
        let b = h.step("left").unwrap();
        assert!(b.truncated);
        let mut other = Harness::<Sokoban>::new();
        other.restore(&snap).unwrap();
        assert_eq!(other.step("left").unwrap(), a);
        assert_eq!(other.step("left").unwrap(), b);
        for bad in [("size", "3x3"), ("size", "big"), ("boxes", "9")] {
            let t = Task::new("train", 0, 0).with_option(bad.0, bad.1);
            assert!(matches!(h.reset(&t), Err(EnvError::BadTask(_))), "{bad:?}");
        }
    }

    #[test]
    fn levels_depend_on_split_and_index_only() {
        let obs = |s: &str, i, seed| start_task(Task::new(s, i, seed));
        assert_eq!(obs("test", 1, 0), obs("test", 1, 99));
        assert_ne!(obs("test", 1, 0), obs("test", 2, 0));
        assert_ne!(obs("test", 1, 0), obs("train", 1, 0));
    }

    fn start_task(t: Task) -> String {
        Harness::<Sokoban>::new().reset(&t).unwrap()
    }
}
