//! wasmtime plumbing with no leafe semantics: the engine and its epoch
//! ticker, limits, the compiled-component cache and the store state every
//! guest gets (capability-free WASI, a virtual clock, bounded output).

pub mod cache;
pub mod engine;
pub mod guest;
pub mod limits;
