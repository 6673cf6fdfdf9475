//! A deliberately misbehaving environment, for the host's adversarial tests.
//! Each action does one bad thing: the host must end that session with a
//! clear error and carry on. Not a built-in: tests load it by path.

use leafe_guest::{EnvError, EnvInfo, Environment, Step, Task, json};
use serde::{Deserialize, Serialize};
use std::hint::black_box;

#[derive(Serialize, Deserialize)]
pub struct Broken {
    steps: u32,
}

fn recurse(n: u64) -> u64 {
    let pad = black_box([n; 16]);
    if black_box(true) {
        recurse(n + 1) + pad[3]
    } else {
        0
    }
}

/// What the guest can see of the outside world.
/// `count` endless Python programs under the largest limits the contract
/// can express; the verdicts, counted.
fn python_loops(count: usize) -> String {
    use leafe_guest::sandbox::{Limits, run_python};
    let limits = Limits {
        fuel: u64::MAX,
        wall_ms: u32::MAX,
        memory_bytes: u64::MAX,
        output_bytes: u32::MAX,
    };
    let mut verdicts = std::collections::BTreeMap::new();
    for _ in 0..count {
        let run = run_python("while True:\n    pass\n", "", &limits);
        *verdicts.entry(run.verdict.as_str()).or_insert(0) += 1;
    }
    format!("{verdicts:?}")
}

fn probe() -> String {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let args: Vec<String> = std::env::args().collect();
    let read = std::fs::read_to_string("/etc/passwd")
        .map(|s| s.len())
        .map_err(|e| e.to_string());
    let list = std::fs::read_dir("/")
        .map(|d| d.count())
        .map_err(|e| e.to_string());
    let write = std::fs::write("/tmp/leafe-escape", b"x").map_err(|e| e.to_string());
    let net = std::net::TcpStream::connect("127.0.0.1:80")
        .map(|_| ())
        .map_err(|e| e.to_string());
    let seeded = {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(42u8)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    json!({
        "env": env, "args": args, "read": format!("{read:?}"), "list": format!("{list:?}"),
        "write": format!("{write:?}"), "net": format!("{net:?}"), "hash": seeded, "now": now,
    })
    .to_string()
}

impl Environment for Broken {
    fn info() -> EnvInfo {
        EnvInfo::new(
            "broken",
            "0.1.0",
            "ok | trap | loop | alloc | recurse | print | stderr | sleep | exit | probe | nan | inf \
             | python-loop | python-loops",
        )
        .split("test", 1)
    }

    fn reset(_task: &Task) -> Result<(Self, String), EnvError> {
        Ok((Broken { steps: 0 }, "ready".into()))
    }

    fn step(&mut self, action: &str) -> Step {
        self.steps += 1;
        let observation = match action {
            "trap" => panic!("the broken env panics on purpose"),
            "loop" => loop {
                black_box(&mut self.steps);
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => recurse(0).to_string(),
            "print" => loop {
                println!("{}", "spam ".repeat(1000));
            },
            "stderr" => loop {
                eprintln!("{}", "noise ".repeat(1000));
            },
            "sleep" => {
                let start = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_secs(3600 * 24 * 365));
                format!("slept {}s", start.elapsed().as_secs())
            }
            "exit" => std::process::exit(3),
            "probe" => probe(),
            "nan" => return Step::new("a reward no log can hold", f64::NAN),
            "inf" => return Step::new("an infinite reward", f64::INFINITY),
            // Ask the host's sandbox for far more than any user allows.
            "python-loop" => python_loops(1),
            "python-loops" => python_loops(1000),
            _ => format!("step {}", self.steps),
        };
        Step::new(observation, 0.0)
    }
}

leafe_guest::export_environment!(Broken);
