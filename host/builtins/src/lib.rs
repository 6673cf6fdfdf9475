//! The environment components built from `envs-wasm/` by the build script.
//! Built-ins are embedded in the binary; test components are reachable by
//! path only.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// The Python sandbox component (world `code-runner`).
pub const PYTHON: &[u8] = generated::PYTHON;

/// A built-in environment.
pub struct Builtin {
    pub name: &'static str,
    pub bytes: &'static [u8],
    /// The component's WASI arguments after its name: how one component
    /// (`envs-wasm/code`) serves several benchmarks.
    pub args: &'static [&'static str],
    /// Whether `NAME:PATH` may give it a data file or directory, which it
    /// sees read-only under `/data`.
    pub takes_data: bool,
}

/// The built-in environments.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "sokoban",
        bytes: generated::SOKOBAN,
        args: &[],
        takes_data: false,
    },
    Builtin {
        name: "guess",
        bytes: generated::GUESS,
        args: &[],
        takes_data: false,
    },
    Builtin {
        name: "mbpp",
        bytes: generated::CODE,
        args: &["mbpp"],
        takes_data: false,
    },
    Builtin {
        name: "codecontests",
        bytes: generated::CODE,
        args: &["codecontests"],
        takes_data: true,
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

/// Components that exist for the test suite.
pub mod test_components {
    /// `envs-wasm/broken`: traps, loops, allocates and prints on command.
    pub const BROKEN_PATH: &str = super::generated::BROKEN_PATH;
    /// `envs-wasm/sokoban`, as a file.
    pub const SOKOBAN_PATH: &str = super::generated::SOKOBAN_PATH;
    /// `envs-wasm/guess`, as a file.
    pub const GUESS_PATH: &str = super::generated::GUESS_PATH;
    /// `envs-wasm/code`, as a file (it serves MBPP when given no arguments).
    pub const CODE_PATH: &str = super::generated::CODE_PATH;
}
