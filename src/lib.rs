//! fwrun: run an embedded device's firmware (its root file system image and
//! its init) isolated on a Linux host. The binary is `src/main.rs`; the
//! modules are public so that tests and the doc generators can reach the
//! command-line definition.
//!
//! The layers, top down (a module imports only from layers below it):
//! - `cli` (the clap definition) and `config` (turned once into a
//!   [`config::RunConfig`]); `run` puts the phases in order;
//! - `host`, `state`, `network`, `firmware`, `confine`, `supervise`,
//!   `report`: one folder per concern;
//! - `sys`, `error`, `fault`: syscall wrappers and shared plumbing.

pub mod cli;
pub mod config;
pub mod confine;
pub mod control;
pub mod error;
pub mod fault;
pub mod firmware;
pub mod host;
pub mod inspect;
pub mod network;
pub mod process;
pub mod report;
pub mod run;
pub mod state;
pub mod supervise;
pub mod sys;
