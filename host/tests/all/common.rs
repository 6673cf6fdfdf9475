//! Helpers shared by the host's integration tests.

use leafe_host::engine::{EngineOptions, Runtime};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// One runtime per test binary, with a compile cache in the target dir, so
/// the Python interpreter is compiled once, not once per test.
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Runtime::new(EngineOptions {
                cache: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("leafe-cache")),
                ..Default::default()
            })
            .unwrap()
        })
        .clone()
}
