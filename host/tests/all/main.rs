//! The host's integration tests, one binary (linking wasmtime once, and one
//! shared runtime that compiles the Python interpreter once).

mod cli;
mod code;
mod common;
mod explore;
mod judge;
mod layers;
mod llm;
mod python;
mod readme;
mod robustness;
mod sandbox;
mod serve;
mod serve_clients;
