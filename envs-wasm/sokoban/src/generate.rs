//! Level generation in the style of gym-sokoban: carve a room by a random
//! walk, put the boxes on their targets, then play *backwards* (the player
//! pulls boxes) from that solved position. Every move of reverse play can be
//! undone by a forward push, so each level is solvable by construction; the
//! solver confirms it and gives the optimal length.

use crate::board::{Board, Cell, Dir};
use crate::deadlock::live_cells;
use crate::solver::{self, Solution};
use leafe_guest::Rng;

/// Parameters of a generated level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub width: u16,
    pub height: u16,
    pub boxes: usize,
}

/// A generated level and the length of its shortest solution.
pub struct Level {
    pub board: Board,
    pub optimal_moves: usize,
}

/// 3x3 stamps the room walk carves, as gym-sokoban's masks.
const MASKS: [[u8; 9]; 5] = [
    [0, 0, 0, 1, 1, 1, 0, 0, 0],
    [1, 0, 0, 1, 0, 0, 1, 0, 0],
    [0, 0, 0, 1, 1, 0, 0, 1, 0],
    [0, 0, 0, 1, 1, 0, 1, 1, 0],
    [0, 0, 0, 0, 1, 1, 0, 1, 0],
];

fn room_topology(p: Params, rng: &mut Rng) -> Vec<bool> {
    let (w, h) = (i32::from(p.width), i32::from(p.height));
    let mut floor = vec![false; (w * h) as usize];
    let steps = 1 + (w + h) as usize * 2;
    let (mut r, mut c) = (
        1 + rng.below((h - 2) as u64) as i32,
        1 + rng.below((w - 2) as u64) as i32,
    );
    let dirs = [(-1, 0), (1, 0), (0, -1), (0, 1)];
    let mut dir = dirs[rng.below(4) as usize];
    for _ in 0..steps {
        if rng.chance(0.35) {
            dir = dirs[rng.below(4) as usize];
        }
        let mask = &MASKS[rng.below(MASKS.len() as u64) as usize];
        for (i, on) in mask.iter().enumerate() {
            let (rr, cc) = (r + i as i32 / 3 - 1, c + i as i32 % 3 - 1);
            if *on == 1 && rr > 0 && cc > 0 && rr < h - 1 && cc < w - 1 {
                floor[(rr * w + cc) as usize] = true;
            }
        }
        r = (r + dir.0).clamp(1, h - 2);
        c = (c + dir.1).clamp(1, w - 2);
        floor[(r * w + c) as usize] = true;
    }
    floor.iter().map(|f| !f).collect()
}

/// Reverse play from the solved board: random walks in which the player may
/// pull the box behind it. Keeps the most scrambled result, scored as
/// gym-sokoban does (box swaps times total box displacement).
fn reverse_play(solved: &Board, rng: &mut Rng) -> Option<Board> {
    let mut best: Option<(u64, Board)> = None;
    let walk_len = 6 * usize::from(solved.width + solved.height);
    for _ in 0..24 {
        let mut b = solved.clone();
        let mut swaps = 0u64;
        let mut last_box: Option<usize> = None;
        // Identity of each box across sorting: track positions by origin.
        let mut origin: Vec<(Cell, Cell)> = b.boxes.iter().map(|c| (*c, *c)).collect();
        for _ in 0..walk_len {
            let dir = Dir::ALL[rng.below(4) as usize];
            let to = b.next(b.player, dir);
            if b.is_wall(to) || b.has_box(to) {
                continue;
            }
            let behind = match dir {
                Dir::Up => b.next(b.player, Dir::Down),
                Dir::Down => b.next(b.player, Dir::Up),
                Dir::Left => b.next(b.player, Dir::Right),
                Dir::Right => b.next(b.player, Dir::Left),
            };
            let from = b.player;
            b.player = to;
            if b.has_box(behind) && rng.chance(0.6) {
                let i = origin.iter().position(|(_, now)| *now == behind)?;
                origin[i].1 = from;
                if last_box != Some(i) {
                    swaps += 1;
                    last_box = Some(i);
                }
                b.boxes = origin.iter().map(|(_, now)| *now).collect();
                b.boxes.sort_unstable();
            }
        }
        let displacement: u64 = origin
            .iter()
            .map(|(o, now)| {
                let (a, c) = (b.row_col(*o), b.row_col(*now));
                u64::from(a.0.abs_diff(c.0) + a.1.abs_diff(c.1))
            })
            .sum();
        let score = swaps * displacement;
        if score > 0 && !b.solved() && best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, b));
        }
    }
    best.map(|(_, b)| b)
}

/// Generate the level for `p` from `rng`. Tries fresh rooms until one works.
pub fn generate(p: Params, rng: &mut Rng) -> Result<Level, String> {
    for _attempt in 0..200 {
        let walls = room_topology(p, rng);
        let mut free: Vec<Cell> = (0..walls.len() as Cell)
            .filter(|c| !walls[usize::from(*c)])
            .collect();
        if free.len() < p.boxes + 3 {
            continue;
        }
        rng.shuffle(&mut free);
        let mut targets = vec![false; walls.len()];
        let mut boxes: Vec<Cell> = free[..p.boxes].to_vec();
        for b in &boxes {
            targets[usize::from(*b)] = true;
        }
        boxes.sort_unstable();
        let solved = Board {
            width: p.width,
            height: p.height,
            walls,
            targets,
            boxes,
            player: free[p.boxes],
        };
        let Some(board) = reverse_play(&solved, rng) else {
            continue;
        };
        let live = live_cells(&board);
        if board.boxes.iter().any(|b| !live[usize::from(*b)]) {
            continue;
        }
        match solver::solve(&board, &live, solver::DEFAULT_NODE_LIMIT) {
            Solution::Moves(moves) if !moves.is_empty() => {
                return Ok(Level {
                    board,
                    optimal_moves: moves.len(),
                });
            }
            _ => continue,
        }
    }
    Err(format!(
        "could not generate a {}x{} level with {} boxes",
        p.width, p.height, p.boxes
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_levels_are_solvable_and_reproducible() {
        for (w, h, boxes) in [(6, 6, 1), (7, 7, 2), (8, 8, 3)] {
            let p = Params {
                width: w,
                height: h,
                boxes,
            };
            for i in 0..40 {
                let level = generate(p, &mut Rng::from_parts("t", &[i])).unwrap();
                let again = generate(p, &mut Rng::from_parts("t", &[i])).unwrap();
                assert_eq!(level.board, again.board);
                let b = &level.board;
                assert_eq!(b.boxes.len(), boxes);
                assert_eq!(b.targets.iter().filter(|t| **t).count(), boxes);
                assert!(!b.solved() && !b.is_wall(b.player) && !b.has_box(b.player));
                // The border is all wall, so moves never leave the board.
                for c in 0..b.cells() as Cell {
                    let (r, col) = (c / w, c % w);
                    if r == 0 || col == 0 || r == h - 1 || col == w - 1 {
                        assert!(b.is_wall(c));
                    }
                }
                let live = live_cells(b);
                assert!(matches!(
                    solver::solve(b, &live, solver::DEFAULT_NODE_LIMIT),
                    Solution::Moves(m) if m.len() == level.optimal_moves
                ));
            }
        }
    }
}
