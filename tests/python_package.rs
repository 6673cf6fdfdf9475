//! The Python package (`python/`): built and installed with pip + maturin
//! into a virtualenv, then its pytest suite (python/tests/run.sh): Gymnasium's
//! env checker on every built-in, cross-process determinism, snapshot
//! round trips under hypothesis, the sandbox's verdicts against `leafe-host
//! exec`, MBPP's test split, GIL-free threads, and the Ray examples on a
//! local Ray instance (a worker killed mid-task included).

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_package_passes_its_pytest_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-python-package");
    let out = Command::new("bash")
        .arg(root.join("python/tests/run.sh"))
        .arg(&venv)
        // A component given by path (the guess environment, as a file).
        .env(
            "LEAFE_TEST_COMPONENT",
            leafe_builtins::test_components::GUESS_PATH,
        )
        // The compile cache the other tests fill, so the interpreter is compiled once.
        .env(
            "LEAFE_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("leafe-cache"),
        )
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains(" passed"), "{log}");
    assert!(!log.contains("skipped"), "no test may be skipped: {log}");
}
