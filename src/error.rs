//! Errors that carry the exit code fwrun should end with.
//!
//! Everything in fwrun returns `anyhow::Result`; a failure that must end with
//! a particular exit code (126, 127, …) carries an [`Exit`] somewhere in its
//! chain. Anything else is a launcher failure: exit code 125.

use std::fmt;

/// fwrun itself failed: bad flags, bad image, a setup step.
pub const LAUNCHER_FAILED: i32 = 125;
/// The init exists but cannot be executed.
pub const INIT_NOT_EXECUTABLE: i32 = 126;
/// The init does not exist in the firmware.
pub const INIT_NOT_FOUND: i32 = 127;
/// --timeout expired.
pub const TIMED_OUT: i32 = 124;

/// A failure with a message meant for a person and the exit code to end with.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub msg: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Exit {}

/// A launcher failure (exit 125) with the given message.
pub fn fail(msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code: LAUNCHER_FAILED,
        msg: msg.into(),
    }
    .into()
}

/// A failure that ends with `code`.
pub fn fail_with(code: i32, msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        msg: msg.into(),
    }
    .into()
}

/// The exit code an error should end fwrun with.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(LAUNCHER_FAILED, |e| e.code)
}

/// The error as one line: the chain joined with ": ", control characters
/// (a newline in a user's path, say) shown escaped.
pub fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// An I/O error's reason without Rust's "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn code_found_through_context() {
        let e = Err::<(), _>(fail_with(INIT_NOT_FOUND, "no init"))
            .context("starting the firmware")
            .unwrap_err();
        assert_eq!(exit_code(&e), 127);
        assert_eq!(one_line(&e), "starting the firmware: no init");
    }

    #[test]
    fn plain_errors_are_launcher_failures() {
        let e = anyhow::anyhow!("boom\nsecond line");
        assert_eq!(exit_code(&e), 125);
        assert_eq!(one_line(&e), "boom\\nsecond line");
    }
}
