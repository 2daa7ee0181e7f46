//! The firmware's kernel log, its own: what it writes to its /dev/kmsg (a
//! FIFO fwrun made, firmware/rootfs.rs) is read here and written out one
//! record a line, `<PRI>message`, to fwrun's stdout (where the console
//! goes: on a device both are the serial line) or to --kmsg FILE; the same
//! lines go to the FIFO over its /proc/kmsg, for a log daemon reading
//! there. The host's kernel log is neither read nor written for it.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use nix::errno::Errno;
use rustix::stdio::stdout;

use crate::firmware::rootfs::KernelLog as Ends;
use crate::supervise::console::write_all;

/// The priority the kernel gives a record written without one: the user
/// facility at the default message level (warning).
const DEFAULT_PRI: &str = "<12>";
/// A record longer than this is cut, as the kernel cuts its own.
const MAX_RECORD: usize = 8192;

/// Where the records go.
enum Out {
    /// fwrun's stdout; `crlf` when it is the user's terminal in raw mode
    /// (the pty relay), where a line needs its "\r".
    Stdout {
        crlf: bool,
    },
    File(File),
}

/// One run's kernel log, over all its boots.
pub struct KernelLog {
    out: Out,
    /// The current boot's ends.
    ends: Option<Ends>,
    /// A record not yet ended by its newline.
    partial: Vec<u8>,
    /// How many records the firmware wrote.
    pub records: u64,
}

impl KernelLog {
    /// Records to `file`, or to stdout (`raw_terminal`: the user's
    /// terminal is in raw mode while the firmware runs).
    pub fn new(file: Option<File>, raw_terminal: bool) -> KernelLog {
        KernelLog {
            out: match file {
                Some(f) => Out::File(f),
                None => Out::Stdout { crlf: raw_terminal },
            },
            ends: None,
            partial: Vec::new(),
            records: 0,
        }
    }

    /// A new boot's ends (the last boot's are closed).
    pub fn attach(&mut self, ends: Option<Ends>) {
        self.flush_partial();
        self.ends = ends;
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> Option<RawFd> {
        self.ends.as_ref().map(|e| e.written.as_raw_fd())
    }

    /// Read what is there (without waiting) and write it out.
    pub fn ready(&mut self) {
        let Some(ends) = &self.ends else {
            return;
        };
        let fd = ends.written.as_fd();
        let mut buf = [0u8; 16 << 10];
        let mut got = Vec::new();
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        self.take(&got);
    }

    /// After the boot ended: what is left, then the last unfinished record.
    pub fn drain(&mut self) {
        self.ready();
        self.flush_partial();
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let rec = std::mem::take(&mut self.partial);
            self.record(&rec);
        }
    }

    /// Split `bytes` into records at their newlines.
    fn take(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let mut rec = std::mem::take(&mut self.partial);
            rec.extend_from_slice(&rest[..i]);
            rest = &rest[i + 1..];
            self.record(&rec);
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() > MAX_RECORD {
            let rec = std::mem::take(&mut self.partial);
            self.record(&rec);
        }
    }

    /// One record out, as a line with its priority.
    fn record(&mut self, rec: &[u8]) {
        let rec = &rec[..rec.len().min(MAX_RECORD)];
        if rec.is_empty() {
            return;
        }
        self.records += 1;
        let line = line(rec);
        if let Some(ends) = &self.ends {
            // A reader of /proc/kmsg gets what fits; without one, the
            // FIFO keeps the first 64 KiB until one comes.
            let _ = nix::unistd::write(ends.readers.as_fd(), &line);
        }
        match &mut self.out {
            Out::File(f) => {
                let _ = f.write_all(&line);
            }
            Out::Stdout { crlf } => {
                let mut l = line;
                if *crlf {
                    l.insert(l.len() - 1, b'\r');
                }
                let _ = write_all(stdout(), &l);
                crate::report::status::output_written(&l);
            }
        }
    }
}

/// A record as a line: its `<PRI>` prefix kept when it has a valid one,
/// else the kernel's default put in front.
fn line(rec: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rec.len() + 6);
    if !has_priority(rec) {
        out.extend_from_slice(DEFAULT_PRI.as_bytes());
    }
    out.extend_from_slice(rec);
    out.push(b'\n');
    out
}

/// Whether `rec` starts with `<N>`, N a decimal number.
fn has_priority(rec: &[u8]) -> bool {
    let Some(rest) = rec.strip_prefix(b"<") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && digits <= 10 && rest.get(digits) == Some(&b'>')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_priority_or_get_the_default() {
        assert_eq!(line(b"<3>disk failed"), b"<3>disk failed\n");
        assert_eq!(line(b"procd: - init -"), b"<12>procd: - init -\n");
        assert_eq!(line(b"<x>odd"), b"<12><x>odd\n");
        assert_eq!(line(b"<>odd"), b"<12><>odd\n");
    }

    #[test]
    fn records_are_split_at_newlines_across_reads() {
        let path = std::env::temp_dir().join(format!("fwrun-kmsg-unit-{}", std::process::id()));
        let mut k = KernelLog::new(Some(File::create(&path).unwrap()), false);
        k.take(b"<6>one\n<3>tw");
        k.take(b"o\nthree");
        assert_eq!(k.records, 2);
        k.drain();
        assert_eq!(k.records, 3);
        let got = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got, "<6>one\n<3>two\n<12>three\n");
    }
}
