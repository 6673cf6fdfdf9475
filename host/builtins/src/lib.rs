//! # leafe-builtins
//!
//! The components built from `envs-wasm/` by this crate's build script: the
//! built-in environments and the Python sandbox are embedded as bytes; the
//! components that exist only for the test suite are reachable by path
//! ([`test_components`]). Adding a built-in environment is one row in
//! [`BUILTINS`] plus its crate in the build script's `GUESTS` table.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// The Python sandbox component (world `code-runner`).
pub const PYTHON: &[u8] = generated::PYTHON;

/// The SHA-256 of [`PYTHON`], computed at build time.
pub const PYTHON_SHA256: &str = generated::PYTHON_SHA256;

/// The linear memory the Python interpreter starts with, in bytes: a memory
/// limit below it cannot run any program.
pub const PYTHON_MIN_MEMORY: u64 = generated::PYTHON_MIN_MEMORY;

/// The MBPP data file (`envs-wasm/code/data/mbpp.jsonl`) as the `mbpp`
/// component embeds it: a view into the component's own bytes, located by
/// the build script, so the binary holds one copy.
pub fn mbpp_jsonl() -> &'static str {
    let (start, end) = generated::MBPP_IN_CODE;
    std::str::from_utf8(&generated::CODE[start..end])
        .expect("the build script located the UTF-8 data file here")
}

/// A built-in environment.
pub struct Builtin {
    pub name: &'static str,
    pub bytes: &'static [u8],
    /// The SHA-256 of `bytes`, computed at build time.
    pub sha256: &'static str,
    /// The component's WASI arguments after its name: how one component
    /// (`envs-wasm/code`) serves several benchmarks.
    pub args: &'static [&'static str],
    /// What `NAME:PATH` may give it to read (it sees the file or directory
    /// read-only under `/data`), if anything.
    pub data: Option<DataSpec>,
}

/// The data a built-in reads: JSON lines files, each line an object with
/// at least `keys`.
pub struct DataSpec {
    /// What to give, in words, for error messages.
    pub expected: &'static str,
    /// Keys every line's object must have.
    pub keys: &'static [&'static str],
}

/// The built-in environments.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "sokoban",
        bytes: generated::SOKOBAN,
        sha256: generated::SOKOBAN_SHA256,
        args: &[],
        data: None,
    },
    Builtin {
        name: "guess",
        bytes: generated::GUESS,
        sha256: generated::GUESS_SHA256,
        args: &[],
        data: None,
    },
    Builtin {
        name: "household",
        bytes: generated::HOUSEHOLD,
        sha256: generated::HOUSEHOLD_SHA256,
        args: &[],
        data: None,
    },
    Builtin {
        name: "shop",
        bytes: generated::SHOP,
        sha256: generated::SHOP_SHA256,
        args: &[],
        data: None,
    },
    Builtin {
        name: "mbpp",
        bytes: generated::CODE,
        sha256: generated::CODE_SHA256,
        args: &["mbpp"],
        data: None,
    },
    Builtin {
        name: "codecontests",
        bytes: generated::CODE,
        sha256: generated::CODE_SHA256,
        args: &["codecontests"],
        data: Some(DataSpec {
            expected: "a .jsonl file of problems in the deepmind/code_contests schema (one JSON \
                       object a line), or a directory of NAME.jsonl files (one split each)",
            keys: &["name", "description"],
        }),
    },
];

/// Built-in environment `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The bytes of built-in environment `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    find(name).map(|b| b.bytes)
}

/// The names of the built-in environments.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|b| b.name).collect()
}

/// Components that exist for the test suite (not part of any public API).
#[doc(hidden)]
pub mod test_components {
    /// `envs-wasm/broken`: traps, loops, allocates and prints on command.
    pub const BROKEN_PATH: &str = super::generated::BROKEN_PATH;
    /// `envs-wasm/sokoban`, as a file.
    pub const SOKOBAN_PATH: &str = super::generated::SOKOBAN_PATH;
    /// `envs-wasm/guess`, as a file.
    pub const GUESS_PATH: &str = super::generated::GUESS_PATH;
    /// `envs-wasm/household`, as a file.
    pub const HOUSEHOLD_PATH: &str = super::generated::HOUSEHOLD_PATH;
    /// `envs-wasm/shop`, as a file.
    pub const SHOP_PATH: &str = super::generated::SHOP_PATH;
    /// `envs-wasm/code`, as a file (it serves MBPP when given no arguments).
    pub const CODE_PATH: &str = super::generated::CODE_PATH;
}
