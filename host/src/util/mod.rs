//! Leaves that every layer may use: hashing, seeded randomness, the
//! work-sharing loop, progress bars, atomic file writes and HTTP answers. Nothing here
//! imports another module of the crate.

pub mod fs;
pub mod hash;
pub mod http;
pub mod parallel;
pub mod progress;
pub mod rng;
