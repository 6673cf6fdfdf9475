//! Deadlocks: positions from which the level can never be solved, found
//! cheaply enough to check after every push. They are the feedback the
//! reflector turns into an experience.

use crate::board::{Board, Cell, Dir};

/// Cells from which a lone box can still reach some target: everything a
/// box can be *pulled* to, starting from the targets. A box on any other cell
/// is dead (in a corner, or against a wall with no target along it).
pub fn live_cells(board: &Board) -> Vec<bool> {
    let mut live = vec![false; board.cells()];
    let mut stack: Vec<Cell> = (0..board.cells() as Cell)
        .filter(|c| board.is_target(*c))
        .collect();
    for c in &stack {
        live[usize::from(*c)] = true;
    }
    while let Some(cell) = stack.pop() {
        for dir in Dir::ALL {
            // Pulling the box from `cell` one step in `dir` needs the player
            // on that cell and room for them one further.
            let to = board.next(cell, dir);
            if board.is_wall(to) || live[usize::from(to)] {
                continue;
            }
            let player_after = board.next(to, dir);
            if !board.is_wall(player_after) {
                live[usize::from(to)] = true;
                stack.push(to);
            }
        }
    }
    live
}

/// Why a box that just moved to `cell` makes the level unsolvable, if it does.
pub fn explain(board: &Board, live: &[bool], cell: Cell) -> Option<String> {
    if board.is_target(cell) {
        return frozen_block(board, cell);
    }
    let wall = |d| board.is_wall(board.next(cell, d));
    let name = board.cell_name(cell);
    if (wall(Dir::Up) || wall(Dir::Down)) && (wall(Dir::Left) || wall(Dir::Right)) {
        return Some(format!(
            "the box at {name} is in a corner that is not a target: it can never be moved again"
        ));
    }
    if !live[usize::from(cell)] {
        return Some(format!(
            "the box at {name} is against a wall with no target along it: it can never reach a target"
        ));
    }
    frozen_block(board, cell)
}

/// A 2x2 square of walls and boxes, with a box off its target, can never
/// change: none of its boxes can be pushed out.
fn frozen_block(board: &Board, cell: Cell) -> Option<String> {
    let w = board.width;
    let (r, c) = (cell / w, cell % w);
    for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        if r < dr || c < dc || r - dr + 1 >= board.height || c - dc + 1 >= w {
            continue;
        }
        let top_left = (r - dr) * w + (c - dc);
        let square = [top_left, top_left + 1, top_left + w, top_left + w + 1];
        let solid = square
            .iter()
            .all(|s| board.is_wall(*s) || board.has_box(*s));
        let stuck_box = square
            .iter()
            .find(|s| board.has_box(**s) && !board.is_target(**s))
            .copied();
        if let (true, Some(b)) = (solid, stuck_box) {
            return Some(format!(
                "the box at {} is jammed in a 2x2 block of boxes and walls: none of them can move",
                board.cell_name(b)
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, cell: Cell) -> Option<String> {
        let b = Board::parse(text).unwrap();
        explain(&b, &live_cells(&b), cell)
    }

    #[test]
    fn corner() {
        let text = "#####\n#X__#\n#_P_#\n#__O#\n#####\n";
        assert!(check(text, 6).unwrap().contains("corner"));
    }

    #[test]
    fn wall_without_target() {
        // A box against the top wall, the row has no target: dead but no corner.
        let text = "######\n#_X__#\n#__P_#\n#___O#\n######\n";
        let why = check(text, 8).unwrap();
        assert!(why.contains("wall"), "{why}");
    }

    #[test]
    fn wall_with_target_is_alive() {
        let text = "######\n#_X_O#\n#__P_#\n#____#\n######\n";
        assert_eq!(check(text, 8), None);
    }

    #[test]
    fn two_by_two_block() {
        let text = "######\n#____#\n#_XX_#\n#_XX_#\n#OOOO#\n#__P_#\n######\n";
        let why = check(text, 14).unwrap();
        assert!(why.contains("2x2"), "{why}");
    }

    #[test]
    fn free_box_is_not_a_deadlock() {
        let text = "######\n#____#\n#_X__#\n#__P_#\n#___O#\n######\n";
        assert_eq!(check(text, 14), None);
    }
}
