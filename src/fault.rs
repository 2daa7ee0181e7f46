//! Fault injection for tests: with the `fault-injection` feature, the
//! environment variable FWRUN_FAULT=STEP[:kill] makes fwrun fail (or SIGKILL
//! itself) right after the named step. Without the feature this is a no-op
//! the compiler removes.

/// Called after every named step of the run.
#[cfg(feature = "fault-injection")]
pub fn at(step: &str) {
    let Ok(spec) = std::env::var("FWRUN_FAULT") else {
        return;
    };
    // Step names hold ':' themselves (teardown:overlay): only a last ":kill"
    // is the mode.
    let (want, kill) = match spec.strip_suffix(":kill") {
        Some(s) => (s, true),
        None => (spec.as_str(), false),
    };
    if want != step {
        return;
    }
    if kill {
        // In the firmware's init (pid 1 of its namespace, which can neither
        // signal fwrun nor itself), ask fwrun over the child's channel to
        // kill itself, then wait for the parent-death signal.
        let pipe = CHILD_PIPE.load(Ordering::Relaxed);
        if pipe >= 0 {
            let _ = crate::sys::fd::write(pipe, &[KILL_REQUEST]);
            loop {
                nix::unistd::pause();
            }
        }
        // In a child beside fwrun (in fwrun's memory, while fwrun waits):
        // fail the step, and have fwrun kill itself once the child is done.
        if BESIDE.load(Ordering::Relaxed) {
            KILL_ASKED.store(true, Ordering::Relaxed);
        } else {
            kill_self();
        }
    }
    FAILED.with(|f| f.set(true));
}

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "fault-injection")]
static BESIDE: AtomicBool = AtomicBool::new(false);
#[cfg(feature = "fault-injection")]
static KILL_ASKED: AtomicBool = AtomicBool::new(false);

/// In a child that runs beside fwrun, in its memory (the builder of the
/// firmware's root): a :kill at its steps kills fwrun once it is done.
#[cfg(feature = "fault-injection")]
pub fn in_beside() {
    BESIDE.store(true, Ordering::Relaxed);
}

/// In fwrun, once a child beside it is done: a :kill it was asked for.
#[cfg(feature = "fault-injection")]
pub fn kill_if_asked_beside() {
    BESIDE.store(false, Ordering::Relaxed);
    if KILL_ASKED.swap(false, Ordering::Relaxed) {
        kill_self();
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn in_beside() {}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn kill_if_asked_beside() {}

/// The message a child sends on its channel to have fwrun SIGKILL itself.
pub const KILL_REQUEST: u8 = b'K';

#[cfg(feature = "fault-injection")]
static CHILD_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// In the child: its channel to fwrun, for a :kill at a child step.
#[cfg(feature = "fault-injection")]
pub fn in_child(pipe: i32) {
    CHILD_PIPE.store(pipe, Ordering::Relaxed);
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn in_child(_pipe: i32) {}

/// In fwrun: the child asked, at a :kill fault, to be killed with fwrun.
pub fn kill_requested() {
    if cfg!(feature = "fault-injection") {
        kill_self();
    }
}

fn kill_self() {
    let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGKILL);
}

#[cfg(feature = "fault-injection")]
thread_local! {
    static FAILED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether an injected failure is pending; the caller turns it into an error.
#[cfg(feature = "fault-injection")]
pub fn take() -> bool {
    FAILED.with(|f| f.replace(false))
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn at(_step: &str) {}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn take() -> bool {
    false
}

/// Mark the end of a named setup step: inject a fault there if asked to.
pub fn step(name: &str) -> anyhow::Result<()> {
    at(name);
    if take() {
        anyhow::bail!("injected fault after step '{name}'");
    }
    Ok(())
}
