//! Leaves that every layer may use: hashing, seeded randomness, the
//! work-sharing loop, progress bars, atomic file writes, HTTP answers and
//! the error for a setting out of range. Nothing here
//! imports another module of the crate.

pub mod fs;
pub mod hash;
pub mod http;
pub mod parallel;
pub mod progress;
pub mod rng;
pub mod setting;
