//! The home: generation from a task, the commands and their feedback, the
//! goal test and the expert's plan.

use crate::catalog::{self, ROOMS};
use leafe_guest::{EnvError, Rng, Task};
use serde::{Deserialize, Serialize};

/// Split sizes, as ALFWorld's text games.
pub const TRAIN: u32 = 3553;
pub const VALID_SEEN: u32 = 140;
pub const VALID_UNSEEN: u32 = 134;

/// ALFWorld's six task families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    PickAndPlace,
    ExamineInLight,
    CleanThenPlace,
    HeatThenPlace,
    CoolThenPlace,
    PickTwoAndPlace,
}

const FAMILIES: [Family; 6] = [
    Family::PickAndPlace,
    Family::ExamineInLight,
    Family::CleanThenPlace,
    Family::HeatThenPlace,
    Family::CoolThenPlace,
    Family::PickTwoAndPlace,
];

impl Family {
    /// The receptacle type that treats the object, if the goal needs it.
    fn treatment(self) -> Option<&'static str> {
        match self {
            Family::CleanThenPlace => Some("sinkbasin"),
            Family::HeatThenPlace => Some("microwave"),
            Family::CoolThenPlace => Some("fridge"),
            _ => None,
        }
    }

    fn rooms(self) -> &'static [&'static str] {
        match self {
            Family::HeatThenPlace | Family::CoolThenPlace => &["kitchen"],
            Family::CleanThenPlace => &["kitchen", "bathroom"],
            Family::ExamineInLight => &["living room", "bedroom"],
            Family::PickAndPlace | Family::PickTwoAndPlace => {
                &["kitchen", "living room", "bedroom", "bathroom"]
            }
        }
    }

    fn suits(self, obj: &str) -> bool {
        obj != "desklamp"
            && match self {
                Family::CleanThenPlace => catalog::cleanable(obj),
                Family::HeatThenPlace => catalog::heatable(obj),
                Family::CoolThenPlace => catalog::coolable(obj),
                _ => true,
            }
    }

    /// ALFWorld's goal templates (`goal_library.py`), one drawn per task.
    fn phrasings(self, obj: &str, recep: &str) -> [String; 2] {
        match self {
            Family::PickAndPlace => [
                format!("put a {obj} in {recep}."),
                format!("put some {obj} on {recep}."),
            ],
            Family::ExamineInLight => [
                format!("look at {obj} under the desklamp."),
                format!("examine the {obj} with the desklamp."),
            ],
            Family::CleanThenPlace => [
                format!("put a clean {obj} in {recep}."),
                format!("clean some {obj} and put it in {recep}."),
            ],
            Family::HeatThenPlace => [
                format!("put a hot {obj} in {recep}."),
                format!("heat some {obj} and put it in {recep}."),
            ],
            Family::CoolThenPlace => [
                format!("put a cool {obj} in {recep}."),
                format!("cool some {obj} and put it in {recep}."),
            ],
            Family::PickTwoAndPlace => [
                format!("put two {obj} in {recep}."),
                format!("find two {obj} and put them in {recep}."),
            ],
        }
    }
}

/// Object/receptacle combinations held out of training: `valid_unseen`
/// draws only these, `train` and `valid_seen` never.
fn held_out(obj: &str, recep: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in obj.bytes().chain([b'/']).chain(recep.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h.is_multiple_of(5)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recep {
    pub name: String,
    pub kind: String,
    pub open: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Obj {
    pub name: String,
    pub kind: String,
    /// The receptacle it is in; `None` while held.
    pub inside: Option<usize>,
    pub hot: bool,
    pub cool: bool,
    pub clean: bool,
    pub on: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct World {
    family: Family,
    goal_obj: String,
    /// Empty for examine-in-light goals.
    goal_recep: String,
    goal_text: String,
    receps: Vec<Recep>,
    objects: Vec<Obj>,
    /// The receptacle the agent stands at (`None`: the middle of the room).
    at: Option<usize>,
    holding: Option<usize>,
    /// `move X to Y` (ALFWorld >= 0.4) instead of `put X in/on Y`.
    new_grammar: bool,
}

/// `a X, a Y, and a Z` as ALFWorld lists things; `nothing` when empty.
fn listing(names: &[&str]) -> String {
    match names {
        [] => "nothing".into(),
        [one] => format!("a {one}"),
        [rest @ .., last] => {
            let items: Vec<String> = rest.iter().map(|n| format!("a {n}")).collect();
            format!("{}, and a {last}", items.join(", "))
        }
    }
}

impl World {
    /// The home and goal of `task`: a family, a room that allows it, an
    /// object and a target type of the split's kind (held-out combinations
    /// for `valid_unseen`), the room furnished and stocked.
    pub fn generate(task: &Task, new_grammar: bool) -> Result<World, EnvError> {
        let unseen = match task.split.as_str() {
            "train" | "valid_seen" => false,
            "valid_unseen" => true,
            other => return Err(EnvError::BadTask(format!("unknown split {other}"))),
        };
        let mut rng = Rng::for_task(task);
        for _ in 0..10_000 {
            let family = FAMILIES[rng.below(6) as usize];
            let room_name = *rng.choose(family.rooms()).expect("every family has rooms");
            let room = ROOMS
                .iter()
                .find(|r| r.name == room_name)
                .expect("known room");
            let mut receps = Vec::new();
            for (kind, lo, hi) in room.receptacles {
                let n = rng.range_inclusive(u64::from(*lo), u64::from(*hi));
                for i in 1..=n {
                    receps.push(Recep {
                        name: format!("{kind} {i}"),
                        kind: kind.to_string(),
                        open: false,
                    });
                }
            }
            let candidates: Vec<&str> = room
                .objects
                .iter()
                .copied()
                .filter(|o| family.suits(o))
                .collect();
            let Some(&goal_obj) = rng.choose(&candidates) else {
                continue;
            };
            let goal_recep = if family == Family::ExamineInLight {
                String::new()
            } else {
                let mut kinds: Vec<&str> = receps
                    .iter()
                    .map(|r| r.kind.as_str())
                    .filter(|k| catalog::can_contain(k, goal_obj))
                    .filter(|k| Some(*k) != family.treatment())
                    .collect();
                kinds.dedup();
                match rng.choose(&kinds) {
                    Some(k) => k.to_string(),
                    None => continue,
                }
            };
            let combination = if goal_recep.is_empty() {
                "desklamp"
            } else {
                &goal_recep
            };
            if held_out(goal_obj, combination) != unseen {
                continue;
            }
            let phrasing = rng.below(2) as usize;
            let goal_text = family.phrasings(goal_obj, &goal_recep)[phrasing].clone();
            let mut world = World {
                family,
                goal_obj: goal_obj.into(),
                goal_recep,
                goal_text,
                receps,
                objects: Vec::new(),
                at: None,
                holding: None,
                new_grammar,
            };
            if world.stock(room.objects, &mut rng) {
                return Ok(world);
            }
        }
        Err(EnvError::Internal(format!(
            "no solvable home found for task {}",
            task.index
        )))
    }

    /// Place the goal's objects (never already where the goal wants them),
    /// a lamp for examine goals, and some others, each where it can go.
    fn stock(&mut self, kinds: &[&str], rng: &mut Rng) -> bool {
        let wanted = match self.family {
            Family::PickTwoAndPlace => 2 + rng.below(2),
            _ => 1 + rng.below(2),
        };
        let mut placed: Vec<String> = Vec::new();
        for _ in 0..wanted {
            placed.push(self.goal_obj.clone());
        }
        if self.family == Family::ExamineInLight {
            placed.push("desklamp".into());
        }
        let others: Vec<&str> = kinds
            .iter()
            .copied()
            .filter(|k| *k != "desklamp" && *k != self.goal_obj)
            .collect();
        for _ in 0..rng.range_inclusive(4, 9) {
            if let Some(k) = rng.choose(&others) {
                placed.push(k.to_string());
            }
        }
        for kind in placed {
            let places: Vec<usize> = (0..self.receps.len())
                .filter(|i| catalog::can_contain(&self.receps[*i].kind, &kind))
                .filter(|i| kind != self.goal_obj || self.receps[*i].kind != self.goal_recep)
                .collect();
            let Some(&inside) = rng.choose(&places) else {
                return false;
            };
            let n = self.objects.iter().filter(|o| o.kind == kind).count() + 1;
            self.objects.push(Obj {
                name: format!("{kind} {n}"),
                kind,
                inside: Some(inside),
                hot: false,
                cool: false,
                clean: false,
                on: false,
            });
        }
        let enough = match self.family {
            Family::PickTwoAndPlace => 2,
            _ => 1,
        };
        self.objects
            .iter()
            .filter(|o| o.kind == self.goal_obj)
            .count()
            >= enough
    }

    /// The first observation.
    pub fn intro(&self) -> String {
        let names: Vec<&str> = self.receps.iter().map(|r| r.name.as_str()).collect();
        format!(
            "You are in the middle of a room. Looking quickly around you, you see {}.\n\n\
             Your task is to: {}",
            listing(&names),
            self.goal_text
        )
    }

    fn recep(&self, name: &str) -> Option<usize> {
        self.receps.iter().position(|r| r.name == name)
    }

    fn object(&self, name: &str) -> Option<usize> {
        self.objects.iter().position(|o| o.name == name)
    }

    /// Whether the inside of receptacle `r` can be seen and reached.
    fn reachable(&self, r: usize) -> bool {
        self.receps[r].open || !catalog::openable(&self.receps[r].kind)
    }

    fn contents(&self, r: usize) -> Vec<&str> {
        self.objects
            .iter()
            .filter(|o| o.inside == Some(r))
            .map(|o| o.name.as_str())
            .collect()
    }

    /// What the agent sees of receptacle `r` standing at it.
    fn view(&self, r: usize) -> String {
        let name = &self.receps[r].name;
        let inside = listing(&self.contents(r));
        match (catalog::openable(&self.receps[r].kind), self.receps[r].open) {
            (true, false) => format!("The {name} is closed."),
            (true, true) => format!("The {name} is open. In it, you see {inside}."),
            (false, _) => format!("On the {name}, you see {inside}."),
        }
    }

    fn place_verb(&self, obj: &str, recep: &str) -> String {
        if self.new_grammar {
            format!("move {obj} to {recep}")
        } else {
            format!("put {obj} in/on {recep}")
        }
    }

    /// Every command that does something now, sorted (ALFWorld's
    /// `admissible_commands`).
    pub fn admissible(&self) -> Vec<String> {
        let mut out = vec!["inventory".to_string(), "look".to_string()];
        for (i, r) in self.receps.iter().enumerate() {
            if self.at != Some(i) {
                out.push(format!("go to {}", r.name));
            }
        }
        if let Some(r) = self.at {
            let name = &self.receps[r].name;
            out.push(format!("examine {name}"));
            if catalog::openable(&self.receps[r].kind) {
                out.push(format!(
                    "{} {name}",
                    if self.receps[r].open { "close" } else { "open" }
                ));
            }
            if self.reachable(r) {
                for o in self.objects.iter().filter(|o| o.inside == Some(r)) {
                    out.push(format!("examine {}", o.name));
                    if catalog::toggleable(&o.kind) {
                        out.push(format!("use {}", o.name));
                    } else if self.holding.is_none() {
                        out.push(format!("take {} from {name}", o.name));
                    }
                }
            }
            if let Some(h) = self.holding {
                let (obj, kind) = (&self.objects[h].name, &self.objects[h].kind);
                let rkind = self.receps[r].kind.as_str();
                if self.reachable(r) && catalog::can_contain(rkind, kind) {
                    out.push(self.place_verb(obj, name));
                }
                match rkind {
                    "microwave" if catalog::heatable(kind) => {
                        out.push(format!("heat {obj} with {name}"))
                    }
                    "fridge" if catalog::coolable(kind) => {
                        out.push(format!("cool {obj} with {name}"))
                    }
                    "sinkbasin" if catalog::cleanable(kind) => {
                        out.push(format!("clean {obj} with {name}"))
                    }
                    _ => {}
                }
            }
        }
        if let Some(h) = self.holding {
            out.push(format!("examine {}", self.objects[h].name));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Apply `command`; its feedback, or `None` when it is not admissible
    /// ("Nothing happens.", nothing changes).
    pub fn apply(&mut self, command: &str) -> Option<String> {
        let command = command.trim().to_ascii_lowercase();
        if !self.admissible().contains(&command) {
            return None;
        }
        let held = self.holding.map(|h| self.objects[h].name.clone());
        Some(if let Some(r) = command.strip_prefix("go to ") {
            let r = self.recep(r)?;
            self.at = Some(r);
            format!("You arrive at {}. {}", self.receps[r].name, self.view(r))
        } else if let Some(r) = command.strip_prefix("open ") {
            let r = self.recep(r)?;
            self.receps[r].open = true;
            format!("You open the {}. {}", self.receps[r].name, self.view(r))
        } else if let Some(r) = command.strip_prefix("close ") {
            let r = self.recep(r)?;
            self.receps[r].open = false;
            format!("You close the {}.", self.receps[r].name)
        } else if let Some(rest) = command.strip_prefix("take ") {
            let (o, r) = rest.split_once(" from ")?;
            let o = self.object(o)?;
            self.objects[o].inside = None;
            self.holding = Some(o);
            format!("You pick up the {} from the {r}.", self.objects[o].name)
        } else if let Some(rest) = command
            .strip_prefix("put ")
            .and_then(|r| r.split_once(" in/on "))
            .or_else(|| {
                command
                    .strip_prefix("move ")
                    .and_then(|r| r.split_once(" to "))
            })
        {
            let (o, r) = rest;
            let (o, r) = (self.object(o)?, self.recep(r)?);
            self.objects[o].inside = Some(r);
            self.holding = None;
            let (obj, recep) = (&self.objects[o].name, &self.receps[r].name);
            if self.new_grammar {
                format!("You move the {obj} to the {recep}.")
            } else {
                format!("You put the {obj} in/on the {recep}.")
            }
        } else if let Some((verb, rest)) = ["heat", "cool", "clean"].iter().find_map(|v| {
            command
                .strip_prefix(&format!("{v} "))
                .map(|rest| (*v, rest))
        }) {
            let (o, r) = rest.split_once(" with ")?;
            let o = self.object(o)?;
            let obj = &mut self.objects[o];
            match verb {
                "heat" => (obj.hot, obj.cool) = (true, false),
                "cool" => (obj.cool, obj.hot) = (true, false),
                _ => obj.clean = true,
            }
            format!("You {verb} the {} using the {r}.", obj.name)
        } else if let Some(o) = command.strip_prefix("use ") {
            let o = self.object(o)?;
            self.objects[o].on = true;
            format!("You turn on the {}.", self.objects[o].name)
        } else if let Some(x) = command.strip_prefix("examine ") {
            match (self.recep(x), self.object(x)) {
                (Some(r), _) => self.view(r),
                (None, Some(o)) => {
                    let obj = &self.objects[o];
                    let mut states = Vec::new();
                    if obj.hot {
                        states.push("hot");
                    }
                    if obj.cool {
                        states.push("cold");
                    }
                    if obj.clean {
                        states.push("clean");
                    }
                    if states.is_empty() {
                        format!("There's nothing special about {}.", obj.name)
                    } else {
                        format!("This is a {} {}.", states.join(" and "), obj.name)
                    }
                }
                (None, None) => return None,
            }
        } else if command == "inventory" {
            match held {
                Some(h) => format!("You are carrying: a {h}."),
                None => "You are not carrying anything.".into(),
            }
        } else if command == "look" {
            match self.at {
                None => {
                    let names: Vec<&str> = self.receps.iter().map(|r| r.name.as_str()).collect();
                    format!(
                        "You are in the middle of a room. Looking quickly around you, you see {}.",
                        listing(&names)
                    )
                }
                Some(r) => format!(
                    "You are facing the {}. Next to it, you see nothing.",
                    self.receps[r].name
                ),
            }
        } else {
            return None;
        })
    }

    /// Whether an object of the goal's type meets the goal's treatment.
    fn treated(&self, o: usize) -> bool {
        let obj = &self.objects[o];
        match self.family {
            Family::CleanThenPlace => obj.clean,
            Family::HeatThenPlace => obj.hot,
            Family::CoolThenPlace => obj.cool,
            _ => true,
        }
    }

    fn in_goal_recep(&self, o: usize) -> Option<usize> {
        self.objects[o]
            .inside
            .filter(|r| self.receps[*r].kind == self.goal_recep)
    }

    /// The goal test (ALFWorld's PDDL goals).
    pub fn won(&self) -> bool {
        let goal_objs =
            || (0..self.objects.len()).filter(|o| self.objects[*o].kind == self.goal_obj);
        match self.family {
            Family::ExamineInLight => {
                let holds = self
                    .holding
                    .is_some_and(|h| self.objects[h].kind == self.goal_obj);
                let lit_here = self.objects.iter().any(|o| {
                    catalog::toggleable(&o.kind)
                        && o.on
                        && o.inside.is_some()
                        && o.inside == self.at
                });
                holds && lit_here
            }
            Family::PickTwoAndPlace => self.receps.iter().enumerate().any(|(r, _)| {
                goal_objs()
                    .filter(|o| self.in_goal_recep(*o) == Some(r))
                    .count()
                    >= 2
            }),
            _ => goal_objs().any(|o| self.treated(o) && self.in_goal_recep(o).is_some()),
        }
    }

    /// The expert's next command: fetch an object of the goal's type, treat
    /// it, bring it (put down whatever else is in hand first).
    pub fn expert(&self) -> Option<String> {
        if self.won() {
            return None;
        }
        let go = |r: usize| format!("go to {}", self.receps[r].name);
        let goal_kind = |o: usize| self.objects[o].kind == self.goal_obj;
        // Where the goal wants things: for two, the receptacle that already
        // holds one, else the first of the type.
        let target = (0..self.receps.len())
            .filter(|r| self.receps[*r].kind == self.goal_recep)
            .max_by_key(|r| {
                let done = (0..self.objects.len())
                    .filter(|o| goal_kind(*o) && self.objects[*o].inside == Some(*r))
                    .count();
                (done, std::cmp::Reverse(*r))
            });
        let useful = |o: usize| {
            goal_kind(o)
                && (self.family != Family::PickTwoAndPlace || self.objects[o].inside != target)
        };
        match self.holding {
            Some(h) if useful(h) => {
                if self.family == Family::ExamineInLight {
                    let lamp = self
                        .objects
                        .iter()
                        .position(|o| catalog::toggleable(&o.kind))?;
                    let r = self.objects[lamp].inside?;
                    return Some(if self.at != Some(r) {
                        go(r)
                    } else {
                        format!("use {}", self.objects[lamp].name)
                    });
                }
                if !self.treated(h) {
                    let kind = self.family.treatment()?;
                    let r = self.receps.iter().position(|r| r.kind == kind)?;
                    let verb = match kind {
                        "sinkbasin" => "clean",
                        "microwave" => "heat",
                        _ => "cool",
                    };
                    return Some(if self.at != Some(r) {
                        go(r)
                    } else {
                        format!(
                            "{verb} {} with {}",
                            self.objects[h].name, self.receps[r].name
                        )
                    });
                }
                let r = target?;
                Some(if self.at != Some(r) {
                    go(r)
                } else if !self.reachable(r) {
                    format!("open {}", self.receps[r].name)
                } else {
                    self.place_verb(&self.objects[h].name, &self.receps[r].name)
                })
            }
            Some(h) => {
                // Put it down where it can go, here if possible.
                let kind = &self.objects[h].kind;
                let fits = |r: usize| catalog::can_contain(&self.receps[r].kind, kind);
                match self.at.filter(|r| fits(*r)) {
                    Some(r) if self.reachable(r) => {
                        Some(self.place_verb(&self.objects[h].name, &self.receps[r].name))
                    }
                    Some(r) => Some(format!("open {}", self.receps[r].name)),
                    None => {
                        let r = (0..self.receps.len()).find(|r| fits(*r))?;
                        Some(go(r))
                    }
                }
            }
            None => {
                let o = (0..self.objects.len()).find(|o| useful(*o))?;
                let r = self.objects[o].inside?;
                Some(if self.at != Some(r) {
                    go(r)
                } else if !self.reachable(r) {
                    format!("open {}", self.receps[r].name)
                } else {
                    format!("take {} from {}", self.objects[o].name, self.receps[r].name)
                })
            }
        }
    }

    /// Steps the expert needs from here, if it finishes within `limit`.
    pub fn plan_length(&self, limit: u32) -> Option<u32> {
        let mut w = self.clone();
        for n in 0..=limit {
            if w.won() {
                return Some(n);
            }
            let next = w.expert()?;
            w.apply(&next)?;
        }
        None
    }
}
