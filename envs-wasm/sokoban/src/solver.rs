//! Breadth-first search for a shortest solution (fewest moves). It is the
//! oracle behind `expert-action`, and it proves generated levels solvable.

use crate::board::{Board, Cell, Dir};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Give up after this many distinct positions (bounds time and memory).
pub const DEFAULT_NODE_LIMIT: usize = 2_000_000;

/// The result of a search.
#[derive(Debug, PartialEq, Eq)]
pub enum Solution {
    Moves(Vec<Dir>),
    Unsolvable,
    /// The search space was larger than the node limit.
    TooHard,
}

/// A fixed multiplicative hasher: no random keys, so the search does the same
/// work on every machine (and needs no host randomness inside the component).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

type Seen = HashMap<u64, (u64, u8), BuildHasherDefault<KeyHasher>>;

/// Pack player and sorted boxes into one key (7 bits per cell, so boards up
/// to 128 cells and 8 boxes).
fn key(player: Cell, boxes: &[Cell]) -> u64 {
    boxes
        .iter()
        .fold(u64::from(player), |k, b| (k << 7) | u64::from(*b))
}

/// Shortest solution from `board`. `live` marks the cells a box may stand on
/// without a deadlock ([`crate::deadlock::live_cells`]).
pub fn solve(board: &Board, live: &[bool], node_limit: usize) -> Solution {
    if board.solved() {
        return Solution::Moves(Vec::new());
    }
    if board.cells() > 128 || board.boxes.len() > 8 {
        return Solution::TooHard;
    }
    let start = key(board.player, &board.boxes);
    let mut seen: Seen = HashMap::default();
    seen.insert(start, (start, 255));
    let mut queue = VecDeque::from([(board.player, board.boxes.clone())]);
    let mut scratch = board.clone();
    while let Some((player, boxes)) = queue.pop_front() {
        let here = key(player, &boxes);
        for (d, dir) in Dir::ALL.into_iter().enumerate() {
            scratch.player = player;
            scratch.boxes.clone_from(&boxes);
            let moved = scratch.apply(dir);
            if let crate::board::Moved::Blocked = moved {
                continue;
            }
            if let crate::board::Moved::Pushed { to, .. } = moved
                && !live[usize::from(to)]
            {
                continue;
            }
            let next = key(scratch.player, &scratch.boxes);
            if seen.contains_key(&next) {
                continue;
            }
            seen.insert(next, (here, d as u8));
            if scratch.solved() {
                return Solution::Moves(path(&seen, start, next));
            }
            if seen.len() >= node_limit {
                return Solution::TooHard;
            }
            queue.push_back((scratch.player, scratch.boxes.clone()));
        }
    }
    Solution::Unsolvable
}

fn path(seen: &Seen, start: u64, mut at: u64) -> Vec<Dir> {
    let mut moves = Vec::new();
    while at != start {
        let (parent, d) = seen[&at];
        moves.push(Dir::ALL[usize::from(d)]);
        at = parent;
    }
    moves.reverse();
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deadlock::live_cells;

    fn solve_text(text: &str) -> Solution {
        let b = Board::parse(text).unwrap();
        solve(&b, &live_cells(&b), DEFAULT_NODE_LIMIT)
    }

    #[test]
    fn finds_a_shortest_solution_that_works() {
        let text = "######\n#P___#\n#_X__#\n#____#\n#___O#\n######\n";
        let Solution::Moves(moves) = solve_text(text) else {
            panic!()
        };
        let mut b = Board::parse(text).unwrap();
        for m in &moves {
            b.apply(*m);
        }
        assert!(b.solved());
        // One step to get behind the box, two pushes, two steps round, two pushes.
        assert_eq!(moves.len(), 7, "{moves:?}");
    }

    #[test]
    fn deadlocked_levels_are_unsolvable() {
        assert_eq!(
            solve_text("#####\n#X__#\n#_P_#\n#__O#\n#####\n"),
            Solution::Unsolvable
        );
    }

    #[test]
    fn node_limit_is_respected() {
        let text =
            "########\n#P_____#\n#_X_X__#\n#______#\n#_X____#\n#____OO#\n#_____O#\n########\n";
        let b = Board::parse(text).unwrap();
        assert_eq!(solve(&b, &live_cells(&b), 10), Solution::TooHard);
        assert!(matches!(
            solve(&b, &live_cells(&b), DEFAULT_NODE_LIMIT),
            Solution::Moves(_)
        ));
    }
}
