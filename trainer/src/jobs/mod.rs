//! The work of each `leafe-trainer` command, callable without the command
//! line: training (`sft`), generation and serving, benchmarks, the GPU
//! check, the transformers parity check and tiny test models.

pub mod bench;
pub mod devicecheck;
pub mod generate;
pub mod parity;
pub mod serve;
pub mod sft;
pub mod tiny;
