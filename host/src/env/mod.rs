//! Environments: the WIT contract's types, loading and checking a
//! component, the runtime that links it (WASI + the sandbox import), a
//! session (one live instance with snapshot and restore), a snapshot's
//! portable envelope, remote environments behind HTTP, and
//! [`environment::Environment`], which is either.

pub mod component;
pub mod contract;
pub mod environment;
pub mod instance;
pub mod load;
pub mod protocol;
pub mod remote;
pub mod runtime;
pub(crate) mod sandbox_import;
pub mod saved;
pub mod session;

/// Bindings generated from `wit/leafe-env.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({ world: "env", path: "../wit" });
}
