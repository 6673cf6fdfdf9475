//! The host's integration tests, one binary (linking wasmtime once, and one
//! shared runtime that compiles the Python interpreter once).

mod cli;
mod code;
mod common;
mod explore;
mod fuzz;
mod judge;
mod layers;
mod llm;
mod protocol;
mod python;
mod readme;
mod remote;
mod robustness;
mod sandbox;
mod scienceworld;
mod serve;
mod serve_clients;
mod settings;
