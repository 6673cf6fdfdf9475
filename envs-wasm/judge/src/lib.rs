//! How leafe judges a generated program, in one place for the code
//! environments (inside their component) and `leafe-host exec --tests`.
//!
//! - [`extract_program`]: the program in a model's answer (a fenced
//!   ```` ```python ```` block, or bare code);
//! - [`assert_program`]: an MBPP-style test: the solution followed by one
//!   `assert` line;
//! - [`outputs_match`]: a stdin/stdout test's check, token by token with a
//!   tolerance for floating-point numbers, as the CodeContests checkers do;
//! - [`traceback_tail`]: the end of an error report, for feedback;
//! - [`check`]: assert tests judged so that a pass proves the test ran
//!   and held;
//! - [`mbpp`]: MBPP's rows and splits.

pub mod check;
pub mod mbpp;

/// Absolute or relative difference under which two numeric tokens are equal.
pub const FLOAT_TOLERANCE: f64 = 1e-6;

/// The program in `answer`: the first fenced block tagged `python`/`py`/
/// `python3`, else the first fenced block of any kind, else the whole text.
pub fn extract_program(answer: &str) -> String {
    let blocks = fenced_blocks(answer);
    let python = blocks
        .iter()
        .find(|(tag, _)| matches!(tag.as_str(), "python" | "py" | "python3"));
    match python.or(blocks.first()) {
        Some((_, body)) => body.clone(),
        None => answer.trim_matches('\n').to_string(),
    }
}

/// Every ```` ``` ```` block of `text`: (lower-cased tag, body). An
/// unterminated last block runs to the end of the text.
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(tag)) => {
                let tag = tag.trim().to_ascii_lowercase();
                open = Some((tag, Vec::new()));
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                let (tag, body) = open.take().unwrap_or_default();
                blocks.push((tag, body.join("\n")));
            }
            (Some((_, body)), _) => body.push(line),
            (None, None) => {}
        }
    }
    if let Some((tag, body)) = open {
        blocks.push((tag, body.join("\n")));
    }
    blocks
}

/// The program that runs one assert test: the solution, the test's set-up
/// code, then the `assert` line.
pub fn assert_program(solution: &str, setup: &str, test: &str) -> String {
    let mut program = String::with_capacity(solution.len() + setup.len() + test.len() + 4);
    program.push_str(solution.trim_end());
    program.push_str("\n\n");
    if !setup.trim().is_empty() {
        program.push_str(setup.trim_end());
        program.push('\n');
    }
    program.push_str(test.trim());
    program.push('\n');
    program
}

/// Whether `got` is an accepted output for `expected`: the same
/// whitespace-separated tokens, where two tokens that both read as numbers
/// may differ by [`FLOAT_TOLERANCE`] (absolute or relative) when either has
/// a fractional part or exponent.
pub fn outputs_match(expected: &str, got: &str) -> bool {
    let mut want = expected.split_whitespace();
    let mut have = got.split_whitespace();
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) if tokens_match(w, h) => {}
            _ => return false,
        }
    }
}

fn tokens_match(want: &str, have: &str) -> bool {
    if want == have {
        return true;
    }
    let is_float = |t: &str| t.contains(['.', 'e', 'E']);
    if !(is_float(want) || is_float(have)) {
        return false;
    }
    match (want.parse::<f64>(), have.parse::<f64>()) {
        (Ok(w), Ok(h)) if w.is_finite() && h.is_finite() => {
            let diff = (w - h).abs();
            diff <= FLOAT_TOLERANCE || diff <= FLOAT_TOLERANCE * w.abs()
        }
        _ => false,
    }
}

/// The first line where `got` departs from `expected` (1-based), with both
/// lines, for feedback: `None` when the outputs match.
pub fn first_difference(expected: &str, got: &str) -> Option<(usize, String, String)> {
    if outputs_match(expected, got) {
        return None;
    }
    let want: Vec<&str> = expected.trim_end().lines().collect();
    let have: Vec<&str> = got.trim_end().lines().collect();
    for i in 0..want.len().max(have.len()) {
        let w = want.get(i).copied().unwrap_or("");
        let h = have.get(i).copied().unwrap_or("");
        if !outputs_match(w, h) {
            return Some((i + 1, w.to_string(), h.to_string()));
        }
    }
    // Same lines, different tokens overall (e.g. a line split differently).
    Some((1, expected.to_string(), got.to_string()))
}

/// The last `lines` lines of `stderr`, trimmed, each cut to 300 characters.
pub fn traceback_tail(stderr: &str, lines: usize) -> String {
    let all: Vec<&str> = stderr.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| clip(l, 300))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` cut to at most `max` characters, marked with `...` when cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// An assert test file: (set-up code, the assert lines). Every line that
/// starts with `assert` is one test; all other non-blank lines (imports,
/// helpers) are set-up that runs before each test.
pub fn parse_assert_file(text: &str) -> (String, Vec<String>) {
    let mut setup = Vec::new();
    let mut tests = Vec::new();
    for line in text.lines() {
        if line.starts_with("assert") && line[6..].starts_with([' ', '(']) {
            tests.push(line.trim_end().to_string());
        } else if !line.trim().is_empty() {
            setup.push(line);
        }
    }
    (setup.join("\n"), tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_the_python_block() {
        let answer = "Here:\n```text\nnot this\n```\n```python\ndef f():\n    return 1\n```\nDone.";
        assert_eq!(extract_program(answer), "def f():\n    return 1");
        assert_eq!(extract_program("```\nprint(1)\n```"), "print(1)");
        assert_eq!(extract_program("print(2)\n"), "print(2)");
        assert_eq!(extract_program("```py\nprint(3)"), "print(3)");
    }

    #[test]
    fn compares_tokens_with_float_tolerance() {
        assert!(outputs_match("1 2\n3\n", "1 2 3"));
        assert!(outputs_match("YES", "YES\n\n"));
        assert!(!outputs_match("YES", "yes"));
        assert!(!outputs_match("1 2", "1 2 3"));
        assert!(outputs_match("0.333333333", "0.3333333"));
        assert!(outputs_match("123456789.0", "123456789.0001"));
        assert!(outputs_match("1e-9", "0"));
        assert!(!outputs_match("0.5", "0.6"));
        // Integers are compared exactly.
        assert!(!outputs_match(
            "100000000000000000001",
            "100000000000000000000"
        ));
        assert!(outputs_match("10", "10.0000001"));
        assert!(!outputs_match("nan", "nan0"));
    }

    #[test]
    fn finds_the_first_differing_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb"), None);
        assert_eq!(
            first_difference("a\nb\nc", "a\nx\nc"),
            Some((2, "b".into(), "x".into()))
        );
        assert_eq!(
            first_difference("a\nb", "a"),
            Some((2, "b".into(), "".into()))
        );
    }

    #[test]
    fn builds_assert_programs_and_reads_test_files() {
        let p = assert_program("def f(x):\n    return x\n\n", "", "assert f(1) == 1");
        assert_eq!(p, "def f(x):\n    return x\n\nassert f(1) == 1\n");
        let (setup, tests) = parse_assert_file(
            "import math\n\nassert f(1) == 1\nassert(f(2) == 2)\nassertion = 3\n",
        );
        assert_eq!(setup, "import math\nassertion = 3");
        assert_eq!(tests, vec!["assert f(1) == 1", "assert(f(2) == 2)"]);
    }

    #[test]
    fn tails_and_clips() {
        assert_eq!(traceback_tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(clip("héllo", 2), "hé...");
        assert_eq!(clip("hi", 2), "hi");
    }
}
