//! clerk: an RPA document-processing bot runner.
//!
//! The README describes how a job moves and where each concern lives.

pub mod bot;
pub mod browser;
pub mod cli;
pub mod command;
pub mod config;
pub mod document_store;
pub mod documents;
pub mod eventlog;
pub mod extract;
pub mod jobs;
pub mod mail;
pub mod review;
pub mod scheduler;
pub mod server;
pub mod stats;
pub mod step;
pub mod worker;
