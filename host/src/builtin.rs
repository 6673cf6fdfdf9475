//! The environment components built from `envs-wasm/` by the build script.
//! Built-ins are embedded in the binary; test components are reachable by
//! path only.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/components.rs"));
}

/// Built-in environments: (name, component bytes).
pub const BUILTINS: &[(&str, &[u8])] =
    &[("sokoban", generated::SOKOBAN), ("guess", generated::GUESS)];

/// The bytes of built-in environment `name`.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The names of the built-in environments.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}

/// Components that exist for the test suite.
pub mod test_components {
    /// `envs-wasm/broken`: traps, loops, allocates and prints on command.
    pub const BROKEN_PATH: &str = super::generated::BROKEN_PATH;
    /// `envs-wasm/sokoban`, as a file.
    pub const SOKOBAN_PATH: &str = super::generated::SOKOBAN_PATH;
    /// `envs-wasm/guess`, as a file.
    pub const GUESS_PATH: &str = super::generated::GUESS_PATH;
}
