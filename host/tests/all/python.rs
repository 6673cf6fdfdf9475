//! The Python sandbox against adversarial programs: every run ends within
//! its limits with the right verdict, the host survives and is untouched,
//! nothing of the host leaks in, and nothing survives from one run to the
//! next.

use crate::common;

use leafe_host::{EngineOptions, Runtime};
use leafe_host::{PythonSandbox, RunLimits, RunResult, Verdict};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WALL_MS: u64 = 2_000;
/// Slack over the wall-clock limit for the sandbox to notice and unwind
/// (generous: CI machines are slow and busy).
const MARGIN: Duration = Duration::from_secs(3);

fn sandbox() -> Arc<PythonSandbox> {
    common::runtime().python().unwrap()
}

fn limits() -> RunLimits {
    RunLimits {
        fuel: 20_000_000_000,
        wall_ms: WALL_MS,
        memory_bytes: 128 << 20,
        output_bytes: 16 << 10,
    }
}

/// Run `source`, check it ended in time, and return the result.
fn run_with(source: &str, stdin: &str, limits: &RunLimits) -> RunResult {
    // Loading (maybe compiling) the interpreter is not part of the run.
    let sandbox = sandbox();
    let start = Instant::now();
    let r = sandbox.run(source, stdin, limits);
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(limits.wall_ms) + MARGIN,
        "{source:?} took {took:?}"
    );
    r
}

fn run(source: &str) -> RunResult {
    run_with(source, "", &limits())
}

fn assert_verdict(r: &RunResult, verdict: Verdict, stderr_has: &str) {
    assert_eq!(r.verdict, verdict, "{r:#?}");
    assert!(
        r.stderr.contains(stderr_has),
        "stderr should mention {stderr_has:?}: {r:#?}"
    );
}

#[test]
fn a_plain_program_runs_like_python3() {
    let r = run("import sys\nprint('hi', sum(range(10)))\nprint('warn', file=sys.stderr)");
    assert_eq!((r.verdict, r.exit_code), (Verdict::Ok, 0));
    assert_eq!(r.stdout, "hi 45\n");
    assert_eq!(r.stderr, "warn\n");
    assert!(r.fuel_used.unwrap() > 0);
}

#[test]
fn stdin_is_the_programs_input() {
    let r = run_with(
        "import sys\na, b = map(int, input().split())\nrest = sys.stdin.read()\nprint(a + b, repr(rest))",
        "2 3\nmore\n",
        &limits(),
    );
    assert_eq!(r.stdout, "5 'more\\n'\n", "{r:#?}");
    let r = run_with(
        "import sys\nprint(sys.stdin.buffer.read())",
        "x y\n",
        &limits(),
    );
    assert_eq!(r.stdout, "b'x y\\n'\n", "{r:#?}");
    // Reading past the end is EOF, never a wait.
    let r = run("import sys\nprint(repr(sys.stdin.read()))\ninput()");
    assert_eq!(r.stdout, "''\n");
    assert_verdict(&r, Verdict::RuntimeError, "EOFError");
}

#[test]
fn exits_and_errors_get_their_verdicts() {
    let r = run("import sys\nprint('bye')\nsys.exit(3)");
    assert_eq!(
        (r.verdict, r.exit_code, r.stdout.as_str()),
        (Verdict::Ok, 3, "bye\n")
    );
    let r = run("raise ValueError('boom')");
    assert_verdict(&r, Verdict::RuntimeError, "ValueError: boom");
    assert_eq!(r.exit_code, 1);
    assert!(r.stderr.contains("File \"program.py\", line 1"), "{r:#?}");
    let r = run("def f(:\n    pass");
    assert_verdict(&r, Verdict::RuntimeError, "SyntaxError");
    let r = run("import sys\nsys.exit('message')");
    assert_eq!((r.verdict, r.exit_code), (Verdict::Ok, 1));
    assert_eq!(r.stderr, "message\n");
}

#[test]
fn loops_and_sleeps_end_in_time() {
    let r = run("while True:\n    pass");
    assert_verdict(&r, Verdict::TimeLimit, "sandbox:");
    // Fuel is deterministic: the same program stops at the same point.
    let small = RunLimits {
        fuel: 50_000_000,
        ..limits()
    };
    let a = run_with("i = 0\nwhile True:\n    i += 1", "", &small);
    assert_verdict(&a, Verdict::TimeLimit, "fuel limit");
    assert_eq!(
        a.fuel_used,
        Some(small.fuel),
        "out of fuel: all of it was used"
    );
    // The wall clock stops what fuel would let go on.
    let wall = RunLimits {
        fuel: u64::MAX / 4,
        wall_ms: 300,
        ..limits()
    };
    let b = run_with("while True:\n    pass", "", &wall);
    assert_verdict(&b, Verdict::TimeLimit, "wall-clock limit");
    // The engine's count is not exact after a wall-clock stop: no number.
    assert_eq!(b.fuel_used, None, "{b:#?}");
    // Sleeping uses a virtual clock: it neither blocks the host nor the run.
    let r = run("import time\nt = time.time()\ntime.sleep(10**6)\nprint(time.time() - t >= 10**6)");
    assert_eq!(
        (r.verdict, r.stdout.as_str()),
        (Verdict::Ok, "True\n"),
        "{r:#?}"
    );
    let r = run("import re\nprint(re.match(r'(a+)+$', 'a' * 40 + 'b'))");
    assert_verdict(&r, Verdict::TimeLimit, "sandbox:");
}

#[test]
fn memory_bombs_hit_the_memory_limit() {
    let r = run("x = []\nwhile True:\n    x.append([0] * 10**6)");
    assert_verdict(&r, Verdict::MemoryLimit, "MemoryError");
    let r = run("s = 'a' * (500 * 10**6)\nprint(len(s))");
    assert_verdict(&r, Verdict::MemoryLimit, "MemoryError");
    let r = run("b = bytearray(1)\nwhile True:\n    b = b + b");
    assert_eq!(r.verdict, Verdict::MemoryLimit, "{r:#?}");
}

#[test]
fn recursion_is_stopped() {
    let r = run("def f(n):\n    return f(n + 1)\nf(0)");
    assert_verdict(&r, Verdict::RuntimeError, "RecursionError");
    // Lifting Python's own limit: the interpreter's stack or memory gives out instead.
    let r = run("import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)");
    assert_ne!(r.verdict, Verdict::Ok, "{r:#?}");
    assert_ne!(r.verdict, Verdict::SandboxError, "{r:#?}");
}

#[test]
fn output_floods_are_cut_at_the_limit() {
    let cap = limits().output_bytes;
    let r = run("while True:\n    print('x' * 1000)");
    assert_eq!(r.verdict, Verdict::OutputLimit, "{r:#?}");
    assert_eq!(r.stdout.len(), cap);
    let r = run("import sys\nwhile True:\n    sys.stderr.write('y' * 1000)");
    assert_eq!(r.verdict, Verdict::OutputLimit);
    assert_eq!(r.stderr.len(), cap);
    // Exactly the limit is fine.
    let r = run(&format!("import sys\nsys.stdout.write('z' * {cap})"));
    assert_eq!((r.verdict, r.stdout.len()), (Verdict::Ok, cap), "{r:#?}");
}

#[test]
fn the_host_is_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "host secret").unwrap();
    let target = dir.path().join("written.txt");
    let probes = [
        format!("print(open({:?}).read())", secret.display().to_string()),
        format!("open({:?}, 'w').write('x')", target.display().to_string()),
        "import os\nprint(os.listdir('/'))".to_string(),
        "import os\nprint(os.listdir('.'))".to_string(),
        "import socket".to_string(),
        "import subprocess\nsubprocess.run(['ls'])".to_string(),
        "import os\nos.system('touch /tmp/leafe-pwned')".to_string(),
        "import os\nos.fork()".to_string(),
        "import ctypes".to_string(),
        "import threading\nt = threading.Thread(target=print)\nt.start()".to_string(),
    ];
    for probe in &probes {
        let r = run(probe);
        assert_eq!(r.verdict, Verdict::RuntimeError, "{probe}: {r:#?}");
        assert!(!r.stdout.contains("host secret"), "{probe}: {r:#?}");
    }
    assert!(!target.exists());
    assert!(!Path::new("/tmp/leafe-pwned").exists());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");

    // No environment variables, and no host identity in what it can see.
    let r = run("import os, sys\nprint(dict(os.environ), sys.argv)");
    assert_eq!(r.stdout, "{} ['program.py']\n", "{r:#?}");
    let home = std::env::var("HOME").unwrap_or_default();
    if !home.is_empty() {
        assert!(!r.stdout.contains(&home));
    }
}

#[test]
fn no_state_survives_between_runs() {
    let set = run("import math\nG = 41\nmath.leaked = True\nprint('set')");
    assert_eq!(set.stdout, "set\n");
    let read = run("import math\nprint('G' in globals(), hasattr(math, 'leaked'))");
    assert_eq!(read.stdout, "False False\n", "{read:#?}");
}

#[test]
fn runs_are_deterministic() {
    let program = "import random, time, os\nprint(random.random(), time.time(), os.urandom(4).hex())\nprint({'b', 'a', 'c'})\nprint(hash('leafe'))";
    let a = run(program);
    let b = run(program);
    assert_eq!(a.verdict, Verdict::Ok, "{a:#?}");
    assert_eq!((&a.stdout, a.fuel_used), (&b.stdout, b.fuel_used));
}

#[test]
fn unicode_and_big_numbers_work() {
    let r = run("print('héllo ✓ 日本')\nprint(2**200 % 1000007, len(bin(3**20000)))");
    assert_eq!(
        r.stdout,
        format!(
            "héllo ✓ 日本\n{} 31702\n",
            (1..=200).fold(1u64, |a, _| a * 2 % 1000007)
        )
    );
}

#[test]
fn many_runs_in_parallel() {
    let sandbox = sandbox();
    let programs: Vec<(String, String)> = (0..24)
        .map(|i| match i % 3 {
            0 => (format!("print({i} * {i})"), String::new()),
            1 => ("while True: pass".to_string(), String::new()),
            _ => ("print(input()[::-1])".to_string(), format!("abc{i}\n")),
        })
        .collect();
    let small = RunLimits {
        fuel: 200_000_000,
        ..limits()
    };
    let results = leafe_host::sandbox::run_many(&sandbox, &programs, &small, 4);
    for (i, r) in results.iter().enumerate() {
        match i % 3 {
            0 => assert_eq!(r.stdout, format!("{}\n", i * i)),
            1 => assert_eq!(r.verdict, Verdict::TimeLimit),
            _ => {
                let reversed: String = format!("abc{i}").chars().rev().collect();
                assert_eq!(r.stdout, format!("{reversed}\n"));
            }
        }
    }
}

#[test]
fn a_broken_component_is_a_clear_error() {
    let runtime = Runtime::new(EngineOptions {
        cache: None,
        ..Default::default()
    })
    .unwrap();
    let err = PythonSandbox::load_bytes(&runtime.engine, None, 64 << 20, b"\0asm\x0d\0\x01\0")
        .err()
        .expect("not a component");
    assert!(
        format!("{err:#}").contains("Python sandbox component"),
        "{err:#}"
    );
}
