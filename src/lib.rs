//! clerk: an RPA document-processing bot runner.
//!
//! See `ARCHITECTURE.md` for how an item flows through the modules below.

pub mod bot;
pub mod cli;
pub mod jobs;
pub mod scheduler;
pub mod step;
pub mod worker;
