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
    let (want, how) = spec.split_once(':').unwrap_or((spec.as_str(), "fail"));
    if want != step {
        return;
    }
    if how == "kill" {
        // SAFETY: plain syscall.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    FAILED.with(|f| f.set(true));
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
