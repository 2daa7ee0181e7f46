//! The host's side of a run, done by the launcher before the clone: preflight
//! checks, the image's kind, the launcher's private mount namespace, the
//! read-only lower layer (loop device or directory bind), the overlay, the
//! init's program read ahead into a cold image's cache, the
//! run's cgroup, and the binfmt_misc handler of a foreign firmware.

pub mod binfmt;
pub mod cgroup;
pub mod devnode;
pub mod image;
pub mod loopdev;
pub mod lower;
pub mod namespace;
pub mod overlay;
pub mod prefetch;
pub mod preflight;
