use super::*;
use leafe_guest::Harness;

fn started(split: &str, index: u32, options: &[(&str, &str)]) -> (Harness<Household>, String) {
    let mut task = Task::new(split, index, 0);
    for (k, v) in options {
        task = task.with_option(k, v);
    }
    let mut h = Harness::new();
    let first = h.reset(&task).unwrap();
    (h, first)
}

/// The expert plays task `index` to the end: (won, steps).
fn expert_plays(split: &str, index: u32) -> (bool, u32) {
    let (mut h, _) = started(split, index, &[]);
    let mut steps = 0;
    while let Some(action) = h.expert_action() {
        assert!(
            h.admissible_actions().unwrap().contains(&action),
            "{split} {index}: the expert's {action:?} is not admissible"
        );
        let out = h.step(&action).unwrap();
        steps += 1;
        assert!(
            out.info_json()["dead-end"].is_null(),
            "{split} {index}: {out:?}"
        );
        if out.terminated {
            return (out.info_json()["success"] == true, steps);
        }
    }
    (false, steps)
}

#[test]
fn the_expert_solves_every_kind_of_task_in_every_split() {
    for (split, count) in [
        ("train", 300),
        ("valid_seen", VALID_SEEN_N),
        ("valid_unseen", VALID_UNSEEN_N),
    ] {
        for index in 0..count {
            let (won, steps) = expert_plays(split, index);
            assert!(
                won && steps <= MAX_STEPS,
                "{split} {index}: won {won} in {steps}"
            );
        }
    }
}

const VALID_SEEN_N: u32 = world::VALID_SEEN;
const VALID_UNSEEN_N: u32 = world::VALID_UNSEEN;

fn goal(first: &str) -> &str {
    first.split("Your task is to: ").nth(1).unwrap()
}

#[test]
fn goals_cover_the_six_families_and_held_out_combinations_stay_out_of_training() {
    let mut starts = std::collections::BTreeSet::new();
    for index in 0..200 {
        let (_, first) = started("train", index, &[]);
        let g = goal(&first);
        let family = [
            "put a clean",
            "clean some",
            "put a hot",
            "heat some",
            "put a cool",
            "cool some",
            "put two",
            "find two",
            "look at",
            "examine the",
            "put a",
            "put some",
        ]
        .iter()
        .find(|p| g.starts_with(*p))
        .map(|p| match *p {
            "put a clean" | "clean some" => "clean",
            "put a hot" | "heat some" => "heat",
            "put a cool" | "cool some" => "cool",
            "put two" | "find two" => "two",
            "look at" | "examine the" => "examine",
            _ => "put",
        });
        starts.insert(family.unwrap_or_else(|| panic!("{g}")));
    }
    assert_eq!(starts.len(), 6, "{starts:?}");
    // Unseen goals name combinations training never asks for.
    let goal_words = |split: &str, n: u32| -> std::collections::BTreeSet<String> {
        (0..n)
            .map(|i| goal(&started(split, i, &[]).1).to_string())
            .collect()
    };
    let train = goal_words("train", 600);
    let unseen = goal_words("valid_unseen", VALID_UNSEEN_N);
    assert!(unseen.iter().all(|g| !train.contains(g)));
}

#[test]
fn commands_and_feedback_read_like_alfworld() {
    let (mut h, first) = started("train", 7, &[]);
    assert!(
        first
            .starts_with("You are in the middle of a room. Looking quickly around you, you see a ")
    );
    assert!(
        first.contains(", and a ") && first.contains("\n\nYour task is to: "),
        "{first}"
    );
    let say = |h: &mut Harness<Household>, a: &str| h.step(a).unwrap().observation;
    assert_eq!(say(&mut h, "dance"), "Nothing happens.");
    assert_eq!(say(&mut h, "inventory"), "You are not carrying anything.");
    // Go to a closed receptacle, open it, close it.
    let closed = h
        .admissible_actions()
        .unwrap()
        .into_iter()
        .find(|a| a.starts_with("go to cabinet") || a.starts_with("go to drawer"))
        .unwrap();
    let name = closed.trim_start_matches("go to ").to_string();
    assert_eq!(
        say(&mut h, &closed),
        format!("You arrive at {name}. The {name} is closed.")
    );
    assert_eq!(say(&mut h, &closed), "Nothing happens.", "already there");
    let opened = say(&mut h, &format!("open {name}"));
    assert!(opened.starts_with(&format!(
        "You open the {name}. The {name} is open. In it, you see "
    )));
    assert_eq!(
        say(&mut h, &format!("close {name}")),
        format!("You close the {name}.")
    );
    assert_eq!(
        say(&mut h, "look"),
        format!("You are facing the {name}. Next to it, you see nothing.")
    );
    // Every admissible command does something; anything else does nothing.
    for a in h.admissible_actions().unwrap() {
        let mut probe = Harness::<Household>::new();
        probe.restore(&h.snapshot().unwrap()).unwrap();
        assert_ne!(
            probe.step(&a).unwrap().observation,
            "Nothing happens.",
            "{a}"
        );
    }
}

#[test]
fn the_new_grammar_moves_and_bad_options_are_refused() {
    let (mut h, _) = started("train", 3, &[("grammar", "new")]);
    while let Some(a) = h.expert_action() {
        assert!(!a.starts_with("put "), "{a}");
        let out = h.step(&a).unwrap();
        if a.starts_with("move ") {
            assert!(out.observation.starts_with("You move the "), "{out:?}");
        }
    }
    let bad = Task::new("train", 0, 0).with_option("grammar", "ancient");
    assert!(Harness::<Household>::new().reset(&bad).is_err());
}

#[test]
fn too_few_steps_left_is_a_dead_end() {
    let (mut h, _) = started("train", 11, &[("max-steps", "2")]);
    let out = h.step("look").unwrap();
    assert!(
        out.info_json()["dead-end"]
            .as_str()
            .unwrap()
            .contains("steps left"),
        "{out:?}"
    );
}

#[test]
fn same_task_same_home_and_snapshots_round_trip() {
    let (mut a, first_a) = started("valid_seen", 5, &[]);
    let (_, first_b) = started("valid_seen", 5, &[]);
    assert_eq!(first_a, first_b);
    let expert = a.expert_action().unwrap();
    let saved = a.snapshot().unwrap();
    let after = a.step(&expert).unwrap();
    a.restore(&saved).unwrap();
    assert_eq!(a.step(&expert).unwrap(), after);
}
