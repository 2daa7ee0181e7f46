//! Making processes: the one place fwrun starts children, and the one
//! start-up sequence that every child running a program of the firmware's
//! follows. Below everything but the system call wrappers: the layers
//! above hand it values (what to mount is theirs, how to start is here).
//! - `spawn.rs`: the ways a child is made (beside fwrun in its memory,
//!   reading ahead alongside it, or a copy in new namespaces);
//! - `channel.rs`: the typed link between fwrun and such a child;
//! - `startup.rs`: the start-up sequence shared by the init and the
//!   commands run inside a running firmware;
//! - `confine.rs`: applying a confinement in the child;
//! - `join.rs`: a command started inside a running firmware;
//! - `exec.rs`: the exec and what its failure means (126, 127);
//! - `pid2.rs`: `--as-pid2`'s minimal pid 1.

pub mod channel;
pub mod confine;
pub mod exec;
pub mod join;
pub mod pid2;
pub mod spawn;
pub mod startup;
