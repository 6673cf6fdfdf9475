//! The judge against programs that try to fool it: every way to a passing
//! verdict that is not a correct program fails, in `exec --tests` (the
//! library's `run_tests`) and in the mbpp environment alike, while every MBPP
//! reference solution of the test and train splits still passes.

use crate::common::{leafe_command, runtime};
use leafe_host::env::load::load;
use leafe_host::sandbox::tests_file::{TestFile, TestReport, run_tests};
use leafe_host::{RunLimits, Session, Task};
use leafe_judge::check::Compare;
use leafe_judge::mbpp;

/// MBPP task 11 (test split index 0): remove the first and last occurrence
/// of a character. The first assert is the public one.
const SETUP: &str = "";
const ASSERTS: [&str; 3] = [
    "assert remove_Occ(\"hello\",\"l\") == \"heo\"",
    "assert remove_Occ(\"abcda\",\"a\") == \"bcd\"",
    "assert remove_Occ(\"PHP\",\"P\") == \"H\"",
];

/// Programs that must not pass, by the class of attack.
const CHEATS: &[(&str, &str)] = &[
    ("exit at module level", "import sys\nsys.exit(0)"),
    ("os._exit at module level", "import os\nos._exit(0)"),
    (
        "SystemExit in the function",
        "def remove_Occ(s, ch):\n    raise SystemExit",
    ),
    (
        "sys.exit() in the function",
        "import sys\ndef remove_Occ(s, ch):\n    sys.exit()",
    ),
    (
        "exit 0 from a wrong answer's assert",
        "import sys\ndef remove_Occ(s, ch):\n    sys.exit(0)\n    return s",
    ),
    (
        "trace hook that exits on any exception",
        "import sys, os\ndef t(frame, event, arg):\n    if event == 'exception':\n        os._exit(0)\n    return t\nsys.settrace(t)\ndef remove_Occ(s, ch):\n    return s",
    ),
    (
        "excepthook that exits cleanly",
        "import sys, os\nsys.excepthook = lambda *a: os._exit(0)\ndef remove_Occ(s, ch):\n    return s",
    ),
    (
        "stderr whose write exits",
        "import sys, os\nclass E:\n    def write(self, *a):\n        os._exit(0)\n    def flush(self):\n        os._exit(0)\nsys.stderr = E()\ndef remove_Occ(s, ch):\n    return s",
    ),
    (
        "stdout whose write exits",
        "import sys, os\nclass E:\n    def write(self, *a):\n        os._exit(0)\n    def flush(self):\n        os._exit(0)\nsys.stdout = E()\nsys.__stdout__ = E()\ndef remove_Occ(s, ch):\n    return s",
    ),
    (
        "patched traceback printing",
        "import traceback, os\ntraceback.print_exception = lambda *a, **k: os._exit(0)\ndef remove_Occ(s, ch):\n    return s",
    ),
    (
        "atexit handler",
        "import atexit, os\natexit.register(lambda: os._exit(0))\ndef remove_Occ(s, ch):\n    raise ValueError('no')",
    ),
    (
        "an object equal to everything",
        "class Any:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n        return False\n    __hash__ = None\ndef remove_Occ(s, ch):\n    return Any()",
    ),
    (
        "a str subclass equal to everything",
        "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\ndef remove_Occ(s, ch):\n    return S('nope')",
    ),
    (
        "an object that claims to be a str",
        "class Fake:\n    @property\n    def __class__(self):\n        return str\n    def __eq__(self, other):\n        return True\ndef remove_Occ(s, ch):\n    return Fake()",
    ),
    (
        "a class whose metaclass equals every type",
        "class Meta(type):\n    def __eq__(cls, other):\n        return True\n    __hash__ = type.__hash__\nclass Str(metaclass=Meta):\n    pass\ndef remove_Occ(s, ch):\n    return Str()",
    ),
    (
        "a report forged with a guessed token",
        "import sys, os\nprint('@@leafe-check 00000000000000000000000000000000 value \"heo\"')\nsys.stdout.flush()\nos._exit(0)",
    ),
    (
        "a report forged with the token read from the harness",
        "import sys, os\nfor c in sys._getframe().f_code.co_consts:\n    if isinstance(c, str) and c.startswith('@@leafe-check ') and len(c) > 20:\n        print('\\n' + c + 'value \"heo\"')\n        sys.stdout.flush()\n        os._exit(0)",
    ),
    (
        "patched builtins",
        "import builtins\nbuiltins.repr = lambda v: \"'heo'\"\nbuiltins.type = lambda v: str\ndef remove_Occ(s, ch):\n    return 0",
    ),
];

fn limits() -> RunLimits {
    RunLimits {
        fuel: 2_000_000_000,
        wall_ms: 10_000,
        ..RunLimits::default()
    }
}

fn judge(program: &str, compare: Compare) -> TestReport {
    let tests = TestFile::Asserts {
        setup: SETUP.into(),
        asserts: ASSERTS.iter().map(|a| a.to_string()).collect(),
    };
    run_tests(
        &runtime().python().unwrap(),
        program,
        &tests,
        &limits(),
        2,
        compare,
    )
}

#[test]
fn no_cheat_passes_a_test_it_does_not_solve() {
    for (what, program) in CHEATS {
        let report = judge(program, Compare::Plain);
        // The public test's value is in the prompt, so a forged report can
        // carry it; the hidden tests' values are not, and nothing passes them.
        let public_only = what.contains("token read from the harness");
        let expected = usize::from(public_only);
        assert_eq!(report.passed, expected, "{what}: {:#?}", report.tests);
        for t in report.tests.iter().skip(expected) {
            assert!(t.detail.is_some(), "{what}: a failure says why: {t:?}");
        }
    }
    // The early exits are named as such.
    let report = judge("import sys\nsys.exit(0)", Compare::Plain);
    assert_eq!(
        report.tests[0].detail.as_deref(),
        Some("the program ended before the test completed")
    );
    let report = judge(CHEATS[11].1, Compare::Plain);
    assert!(
        report.tests[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("not made of plain values"),
        "{:?}",
        report.tests[0]
    );
}

#[test]
fn correct_programs_pass_and_wrong_ones_say_what_they_got() {
    let right = "def remove_Occ(s,ch):\n    s = s.replace(ch, '', 1)\n    i = s.rfind(ch)\n    return s if i < 0 else s[:i] + s[i+1:]";
    let report = judge(right, Compare::Plain);
    assert_eq!((report.passed, report.total), (3, 3), "{:#?}", report.tests);
    let wrong = "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)";
    let report = judge(wrong, Compare::Plain);
    assert_eq!(
        report.tests[0].detail.as_deref(),
        Some("expected \"heo\", got 'helo'")
    );
    // Plain values compare as Python's == does between built-in types.
    let tests = TestFile::Asserts {
        setup: "from collections import Counter, namedtuple, OrderedDict".into(),
        asserts: [
            "assert f(1) == 1.0",
            "assert f(2) == {'a': 1}",
            "assert f(3) == (1, 2)",
            "assert f(4) == {1, 2}",
            "assert f(5) == True",
            "assert f(6)",
            "assert f(7) == [1, (2, 'x'), {3: [4]}]",
            "assert f(8) == 1e999",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    };
    let program = "from collections import Counter, namedtuple, OrderedDict\nP = namedtuple('P', 'a b')\n\
                   def f(n):\n    return {1: 1, 2: Counter(a=1), 3: P(1, 2), 4: frozenset([1, 2]), 5: 1, \
                   6: [0], 7: [1, (2, 'x'), OrderedDict([(3, [4])])], 8: float('inf')}[n]";
    let report = run_tests(
        &runtime().python().unwrap(),
        program,
        &tests,
        &limits(),
        2,
        Compare::Plain,
    );
    assert_eq!(report.passed, 8, "{:#?}", report.tests);
}

#[test]
fn compare_python_keeps_the_plain_mbpp_semantics_that_can_be_gamed() {
    let report = judge("import sys\nsys.exit(0)", Compare::Python);
    assert_eq!(report.passed, 3, "this is why it is not the default");
    let report = judge(CHEATS[11].1, Compare::Python);
    assert_eq!(report.passed, 3);
}

#[test]
fn exec_tests_takes_the_compare_flag() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("p.py");
    let tests = dir.path().join("t.py");
    std::fs::write(&program, "import sys\nsys.exit(0)\n").unwrap();
    std::fs::write(&tests, ASSERTS.join("\n")).unwrap();
    let run = |extra: &[&str]| {
        let out = leafe_command()
            .args([
                "exec",
                program.to_str().unwrap(),
                "--tests",
                tests.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = run(&[]);
    assert!(plain.contains("passed 0/3"), "{plain}");
    assert!(plain.contains("ended before the test completed"), "{plain}");
    assert!(run(&["--compare", "python"]).contains("passed 3/3"));
}

fn mbpp_session(options: &[(&str, &str)]) -> Session {
    let env = load(&runtime(), "mbpp").unwrap();
    let mut s = Session::new(&env, 0).unwrap();
    let options: Vec<(String, String)> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.reset(&Task::new("test", 0, 0, &options)).unwrap();
    s
}

#[test]
fn the_mbpp_environment_rewards_no_cheat_and_keeps_hidden_tests_hidden() {
    for (what, program) in CHEATS {
        let mut s = mbpp_session(&[]);
        let r = s.step(&format!("```python\n{program}\n```")).unwrap();
        assert!(!r.success(), "{what}: {}", r.observation);
        assert!(r.reward < 0.5, "{what}: {} {}", r.reward, r.observation);
    }
    // Feedback details the public test only; of hidden tests, how many failed.
    let mut s = mbpp_session(&[]);
    let wrong = "```python\ndef remove_Occ(s, ch):\n    return s.replace(ch, '', 1)\n```";
    let r = s.step(wrong).unwrap();
    assert!(
        r.observation.contains("expected \"heo\", got 'helo'"),
        "{}",
        r.observation
    );
    assert!(
        r.observation.contains("hidden tests: 2 of 2 failed"),
        "{}",
        r.observation
    );
    assert!(!r.observation.contains(ASSERTS[1]), "{}", r.observation);
    let mut s = mbpp_session(&[("feedback", "all")]);
    let r = s.step(wrong).unwrap();
    assert!(r.observation.contains(ASSERTS[1]), "{}", r.observation);
    // compare=python: the plain MBPP semantics, gameable.
    let mut s = mbpp_session(&[("compare", "python")]);
    let r = s.step("```python\nimport sys\nsys.exit(0)\n```").unwrap();
    assert!(r.success());
    let env = load(&runtime(), "mbpp").unwrap();
    let mut s = Session::new(&env, 0).unwrap();
    let bad = Task::new("test", 0, 0, &[("compare".into(), "eq".into())]);
    let e = s.reset(&bad).unwrap_err().to_string();
    assert!(e.contains("compare must be plain or python"), "{e}");
}

#[test]
fn every_mbpp_reference_solution_of_the_test_and_train_splits_passes() {
    let sandbox = runtime().python().unwrap();
    let mut problems = Vec::new();
    for split in ["test", "train"] {
        for line in mbpp::split_lines(leafe_builtins::mbpp_jsonl(), split).unwrap() {
            problems.push(mbpp::Row::parse(line).unwrap());
        }
    }
    assert_eq!(problems.len(), 874);
    let limits = RunLimits {
        fuel: 100_000_000_000,
        wall_ms: 60_000,
        ..RunLimits::default()
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(row) = problems.get(i) else { break };
                    let tests = TestFile::Asserts {
                        setup: row.setup(),
                        asserts: row.test_list.clone(),
                    };
                    let report = run_tests(
                        &sandbox,
                        &row.solution(),
                        &tests,
                        &limits,
                        1,
                        Compare::Plain,
                    );
                    if report.passed != report.total {
                        failures.lock().unwrap().push((row.task_id, report.tests));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
}
