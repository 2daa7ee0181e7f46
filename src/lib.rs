//! fwrun: run an embedded device's firmware (its root file system image and
//! its init) isolated on a Linux host. The binary is `src/main.rs`; the
//! modules are public so that tests and the doc generators can reach the
//! command-line definition.

pub mod apparmor;
pub mod changes;
pub mod child;
pub mod cli;
pub mod console;
pub mod denials;
pub mod error;
pub mod fault;
pub mod image;
pub mod loopdev;
pub mod lower;
pub mod namespace;
pub mod overlay;
pub mod pid2;
pub mod preflight;
pub mod report;
pub mod rootfs;
pub mod run;
pub mod signals;
pub mod state;
pub mod supervise;
pub mod sys;
pub mod teardown;
