//! The Python package (`python/`): built and installed with pip + maturin
//! into a virtualenv, then its pytest suite (python/tests/run.sh): Gymnasium's
//! env checker on every built-in, cross-process determinism, snapshot
//! round trips under hypothesis, the sandbox's verdicts against `leafe-host
//! exec`, MBPP's test split, GIL-free threads, and the Ray examples on a
//! local Ray instance (a worker killed mid-task included).

mod support;

use std::path::Path;

#[test]
fn the_python_package_passes_its_pytest_suite() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let log = support::run_script(
        "python/tests/run.sh",
        &[&tmp.join("venv-python-package")],
        &[
            // A component given by path (the guess environment, as a file).
            (
                "LEAFE_TEST_COMPONENT",
                leafe_builtins::test_components::GUESS_PATH.as_ref(),
            ),
            // The compile cache the other tests fill, so the interpreter is compiled once.
            ("LEAFE_CACHE_DIR", tmp.join("leafe-cache").as_os_str()),
        ],
    );
    assert!(log.contains(" passed"), "{log}");
    assert!(!log.contains("skipped"), "no test may be skipped: {log}");
}
