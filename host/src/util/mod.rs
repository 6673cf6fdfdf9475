//! Leaves that every layer may use: hashing, seeded randomness, the
//! work-sharing loop, progress bars and atomic file writes. Nothing here
//! imports another module of the crate.

pub mod fs;
pub mod hash;
pub mod parallel;
pub mod progress;
pub mod rng;
