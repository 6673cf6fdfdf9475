//! The board: walls, targets, boxes and the player, and the rules of a move.

use serde::{Deserialize, Serialize};

/// The four moves, in the order the solver tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Up,
    Down,
    Left,
    Right,
}

impl Dir {
    pub const ALL: [Dir; 4] = [Dir::Up, Dir::Down, Dir::Left, Dir::Right];

    pub fn name(self) -> &'static str {
        match self {
            Dir::Up => "up",
            Dir::Down => "down",
            Dir::Left => "left",
            Dir::Right => "right",
        }
    }

    /// Case-insensitive, surrounding white space ignored.
    pub fn parse(action: &str) -> Option<Dir> {
        let a = action.trim().to_ascii_lowercase();
        Dir::ALL.into_iter().find(|d| d.name() == a)
    }
}

/// A cell index, `row * width + col`.
pub type Cell = u16;

/// A level's fixed layout plus its moving parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Board {
    pub width: u16,
    pub height: u16,
    pub walls: Vec<bool>,
    pub targets: Vec<bool>,
    /// Sorted, so equal positions compare equal.
    pub boxes: Vec<Cell>,
    pub player: Cell,
}

/// What a move did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// Blocked by a wall or by a box that cannot move.
    Blocked,
    Walked,
    /// A box went from `from` to `to`.
    Pushed {
        from: Cell,
        to: Cell,
    },
}

impl Board {
    pub fn cells(&self) -> usize {
        usize::from(self.width) * usize::from(self.height)
    }

    /// The neighbour of `cell` in `dir`. Levels have a wall border, so any
    /// non-wall cell has all four neighbours.
    pub fn next(&self, cell: Cell, dir: Dir) -> Cell {
        match dir {
            Dir::Up => cell - self.width,
            Dir::Down => cell + self.width,
            Dir::Left => cell - 1,
            Dir::Right => cell + 1,
        }
    }

    pub fn is_wall(&self, cell: Cell) -> bool {
        self.walls[usize::from(cell)]
    }
    pub fn is_target(&self, cell: Cell) -> bool {
        self.targets[usize::from(cell)]
    }
    pub fn has_box(&self, cell: Cell) -> bool {
        self.boxes.binary_search(&cell).is_ok()
    }
    pub fn solved(&self) -> bool {
        self.boxes.iter().all(|b| self.is_target(*b))
    }
    pub fn boxes_on_targets(&self) -> usize {
        self.boxes.iter().filter(|b| self.is_target(**b)).count()
    }

    /// Row and column counted from 1, as the observation text names cells.
    pub fn row_col(&self, cell: Cell) -> (u16, u16) {
        (cell / self.width + 1, cell % self.width + 1)
    }
    pub fn cell_name(&self, cell: Cell) -> String {
        let (r, c) = self.row_col(cell);
        format!("r{r}c{c}")
    }

    /// Move the player, pushing at most one box.
    pub fn apply(&mut self, dir: Dir) -> Moved {
        let to = self.next(self.player, dir);
        if self.is_wall(to) {
            return Moved::Blocked;
        }
        if let Ok(i) = self.boxes.binary_search(&to) {
            let beyond = self.next(to, dir);
            if self.is_wall(beyond) || self.has_box(beyond) {
                return Moved::Blocked;
            }
            self.boxes[i] = beyond;
            self.boxes.sort_unstable();
            self.player = to;
            return Moved::Pushed {
                from: to,
                to: beyond,
            };
        }
        self.player = to;
        Moved::Walked
    }

    /// The text grid. Legend: `#` wall, `_` floor, `O` target, `X` box,
    /// `*` box on a target, `P` player, `S` player on a target.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.cells() + usize::from(self.height));
        for cell in 0..self.cells() as Cell {
            let ch = if self.is_wall(cell) {
                '#'
            } else if cell == self.player {
                if self.is_target(cell) { 'S' } else { 'P' }
            } else if self.has_box(cell) {
                if self.is_target(cell) { '*' } else { 'X' }
            } else if self.is_target(cell) {
                'O'
            } else {
                '_'
            };
            out.push(ch);
            if (cell + 1) % self.width == 0 {
                out.push('\n');
            }
        }
        out
    }

    /// Parse the text grid [`Board::render`] writes (used by tests).
    pub fn parse(text: &str) -> Result<Board, String> {
        let rows: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let width = rows.first().map(|r| r.chars().count()).unwrap_or(0);
        if width == 0 || rows.iter().any(|r| r.chars().count() != width) {
            return Err("rows must be non-empty and equally long".into());
        }
        let mut b = Board {
            width: width as u16,
            height: rows.len() as u16,
            walls: Vec::new(),
            targets: Vec::new(),
            boxes: Vec::new(),
            player: 0,
        };
        let mut players = 0;
        for (i, ch) in rows.iter().flat_map(|r| r.chars()).enumerate() {
            b.walls.push(ch == '#');
            b.targets.push(matches!(ch, 'O' | '*' | 'S'));
            if matches!(ch, 'X' | '*') {
                b.boxes.push(i as Cell);
            }
            if matches!(ch, 'P' | 'S') {
                b.player = i as Cell;
                players += 1;
            }
            if !"#_OX*PS".contains(ch) {
                return Err(format!("unknown cell '{ch}'"));
            }
        }
        if players != 1 {
            return Err("exactly one player needed".into());
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_parse_round_trip_and_pushes() {
        let text = "#####\n#P_O#\n#_X_#\n#___#\n#####\n";
        let mut b = Board::parse(text).unwrap();
        assert_eq!(b.render(), text);
        assert_eq!(b.apply(Dir::Up), Moved::Blocked);
        assert_eq!(b.apply(Dir::Right), Moved::Walked);
        assert_eq!(b.apply(Dir::Down), Moved::Pushed { from: 12, to: 17 });
        assert_eq!(b.apply(Dir::Down), Moved::Blocked, "box against the wall");
        assert_eq!(b.cell_name(17), "r4c3");
    }

    #[test]
    fn parse_directions() {
        assert_eq!(Dir::parse(" UP "), Some(Dir::Up));
        assert_eq!(Dir::parse("Left"), Some(Dir::Left));
        assert_eq!(Dir::parse("jump"), None);
    }
}
