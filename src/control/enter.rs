//! `fwrun enter NAME [--] CMD [ARGS]...`: run a command inside a running
//! firmware, as its init runs. This side finds the run and its init
//! (state/live.rs), opens what the command needs from the host (the init's
//! root and working directory, a pty of the firmware's own devpts) and
//! starts the command there (process/join.rs: the start-up sequence every
//! child of the firmware's follows), then, while the command runs, answers its
//! seccomp filter's calls (confine/notify.rs, with the run's mount table),
//! relays its terminal and the signals fwrun gets, and exits with its
//! status. fwrun itself stays outside the firmware: its /proc is the
//! host's, where the notifications' pids are.
//!
//! Processes the command leaves running when it exits keep running, but
//! their mount calls then fail (ENOSYS): no one answers them any more.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{anyhow, Context, Result};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::confine::notify::{self, Notifier};
use crate::error::{fail, LAUNCHER_FAILED};
use crate::firmware::exec::PATH;
use crate::host::preflight;
use crate::process::exec::Program;
use crate::process::join::{self, Running};
use crate::process::startup::{Startup, Terminal};
use crate::state::live::{self, Facts};
use crate::supervise::block_signals;
use crate::supervise::console::{self, Event, RawMode, Relay};
use crate::sys::{self, errno_text, pidfd_signal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnterOptions {
    pub name: String,
    /// Empty: [`DEFAULT_COMMAND`].
    pub command: Vec<OsString>,
    /// Set on top of the run's environment.
    pub env: Vec<(String, String)>,
    /// A pty (true), none (false), or one when stdin is a terminal.
    pub tty: Option<bool>,
    pub quiet: bool,
}

/// The firmware's shell, as a login shell.
pub const DEFAULT_COMMAND: &[&str] = &["/bin/sh", "-l"];

pub fn enter(opts: &EnterOptions) -> Result<i32> {
    preflight::check_root()?;
    let run = live::find(&opts.name)?.ok_or_else(|| {
        fail(format!(
            "no run named '{}' is running (fwrun list shows the live ones)",
            opts.name
        ))
    })?;
    let (init, init_fd) = run.init()?;
    let facts = run.facts()?;
    let (running, cgroups) = running(opts, &facts, init, init_fd)?;
    let (master, slave) = match opts.tty.unwrap_or_else(console::stdin_is_tty) {
        true => {
            let (master, slave) = firmware_pty(&running.root)?;
            (Some(master), Some(slave))
        }
        false => (None, None),
    };
    let startup = startup(opts, &facts, slave.as_ref())?;
    let mut sfd = block_signals()?;
    let cgroups: Vec<_> = cgroups.iter().map(|c| c.as_raw_fd()).collect();
    let child = join::spawn(&running, &cgroups, &startup)?;
    drop(slave);
    // Without the run's mount table, every mount call is refused.
    let table = Some(run.mounts()).filter(|m| !m.is_empty());
    let mut notifier = child
        .listener
        .map(|l| Notifier::from_mountinfo(l, table, facts.host_devs.clone(), init));
    let relay = master.map(Relay::new);
    let raw = match &relay {
        Some(_) => RawMode::enter()?,
        None => None,
    };
    let mut entered = Entered {
        pid: child.pid,
        pidfd: child.pidfd,
        relay,
        eof_sent: false,
    };
    let code = entered.serve(&mut sfd, notifier.as_mut());
    drop(raw);
    if !opts.quiet {
        let refused = notifier.map(|n| n.refused).unwrap_or_default();
        // A command typed by hand: each of its refusals is worth a line.
        for line in notify::summary_lines(&refused, true) {
            eprintln!("fwrun: {line}");
        }
    }
    code
}

/// The init's world as the command joins it (its namespaces through a
/// pidfd, its root and working directory), and the cgroups the command may
/// start in.
fn running(
    opts: &EnterOptions,
    facts: &Facts,
    init: i32,
    init_fd: OwnedFd,
) -> Result<(Running, Vec<OwnedFd>)> {
    let dir = |what: &str| {
        let path = format!("/proc/{init}/{what}");
        sys::open_path(std::path::Path::new(&path), nix::fcntl::OFlag::O_DIRECTORY)
            .map_err(std::io::Error::from)
            .with_context(|| format!("opening the init's {what}"))
    };
    let root = dir("root")?;
    let cwd = dir("cwd").or_else(|_| root.try_clone().map_err(anyhow::Error::from))?;
    // Opened while the init lived: they are its.
    if pidfd_signal(&init_fd, 0).is_err() {
        return Err(fail(format!(
            "run '{}': its init has just ended",
            opts.name
        )));
    }
    let cgroups = match &facts.cgroup {
        Some(run) => cgroups(init, run)?,
        None => Vec::new(),
    };
    Ok((
        Running {
            init: init_fd,
            root,
            cwd,
            userns: facts.userns,
        },
        cgroups,
    ))
}

/// The command, its environment, terminal and confinement, from the run's
/// state.
fn startup(opts: &EnterOptions, facts: &Facts, tty: Option<&OwnedFd>) -> Result<Startup> {
    let command: Vec<OsString> = match opts.command.is_empty() {
        true => DEFAULT_COMMAND.iter().map(OsString::from).collect(),
        false => opts.command.clone(),
    };
    let argv = command
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| fail("an argument holds a NUL byte")))
        .collect::<Result<Vec<_>>>()?;
    let envp = environment(&facts.env, &opts.env)?;
    let search = envp
        .iter()
        .find_map(|kv| kv.to_bytes().strip_prefix(b"PATH="))
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| PATH.to_string());
    let keep = crate::confine::caps::from_mask(facts.caps);
    Ok(Startup {
        // With a pty: a session of its own, the pty as its controlling
        // terminal. Without: fwrun's own, in fwrun's process group (a
        // terminal's signals reach it as they reach fwrun).
        terminal: Terminal {
            new_session: tty.is_some(),
            tty: tty.map(|t| t.as_raw_fd()),
            ..Terminal::default()
        },
        fork_last: true,
        confinement: crate::confine::confinement(
            facts.profile.clone(),
            keep,
            facts.seccomp,
            tty.is_none() && console::stdin_is_tty(),
        ),
        program: Program::Command { search },
        as_pid2: false,
        argv,
        envp,
    })
}

/// Where the unified hierarchy that holds `run` is mounted: /sys/fs/cgroup,
/// or /sys/fs/cgroup/unified on a hybrid host.
fn unified_root(run: &std::path::Path) -> std::path::PathBuf {
    let root = std::path::Path::new(crate::host::cgroup::ROOT);
    match run.starts_with(root.join("unified")) {
        true => root.join("unified"),
        false => root.to_path_buf(),
    }
}

/// The cgroups the command may start in, in order: the run's own; and,
/// should the firmware have given that one controllers (a cgroup that
/// passes controllers on may hold no process), the init's, when it is one
/// below the run's (a firmware may make its own).
fn cgroups(init: i32, run: &std::path::Path) -> Result<Vec<OwnedFd>> {
    let open = |dir: &std::path::Path| -> Result<OwnedFd> {
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .with_context(|| format!("opening the run's cgroup {}", dir.display()))?;
        Ok(f.into())
    };
    let mut out = vec![open(run)?];
    let text = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap_or_default();
    let init_dir = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| unified_root(run).join(p.trim_start_matches('/')))
        .filter(|d| d.starts_with(run) && !d.components().any(|c| c.as_os_str() == ".."));
    if let Some(d) = init_dir.filter(|d| d != run) {
        out.extend(open(&d).ok());
    }
    Ok(out)
}

/// The run's environment with `extra` on top (a key given again replaces
/// the run's).
fn environment(run: &[String], extra: &[(String, String)]) -> Result<Vec<CString>> {
    let mut env: Vec<String> = run.to_vec();
    for (k, v) in extra {
        let key = format!("{k}=");
        env.retain(|kv| !kv.starts_with(&key));
        env.push(format!("{k}={v}"));
    }
    env.into_iter()
        .map(|kv| CString::new(kv).map_err(|_| fail("--env holds a NUL byte")))
        .collect()
}

/// A new pty of the firmware's own devpts (its /dev/pts/ptmx, resolved in
/// its root), so that the command's terminal is one of the firmware's:
/// (master, slave).
fn firmware_pty(root: &OwnedFd) -> Result<(OwnedFd, OwnedFd)> {
    let no_pty = |why: String| {
        fail(format!(
            "cannot open a terminal in the firmware ({why}): use -T to run without one"
        ))
    };
    let ptmx = sys::openat2(
        root.as_fd(),
        std::path::Path::new("/dev/pts/ptmx"),
        libc::O_PATH,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| no_pty(format!("/dev/pts/ptmx: {}", errno_text(e))))?;
    let st = nix::sys::stat::fstat(&ptmx).map_err(|e| no_pty(errno_text(e)))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(5, 2) {
        return Err(no_pty("/dev/pts/ptmx is not a pty multiplexer".into()));
    }
    let master: OwnedFd = File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", ptmx.as_raw_fd()))
        .map_err(|e| no_pty(e.to_string()))?
        .into();
    let slave = sys::pty::open_peer(master.as_fd()).map_err(|e| no_pty(errno_text(e)))?;
    console::copy_winsize(&master);
    Ok((master, slave))
}

/// The command while it runs.
struct Entered {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    relay: Option<Relay>,
    /// The end of the user's stdin has been passed on to the pty.
    eof_sent: bool,
}

impl Entered {
    /// Serve the command until it ends; its exit status.
    fn serve(&mut self, sfd: &mut SignalFd, mut notifier: Option<&mut Notifier>) -> Result<i32> {
        loop {
            let watched = self.relay.as_ref().map(|r| r.watched()).unwrap_or_default();
            let mut pfds: Vec<libc::pollfd> = [
                sfd.as_raw_fd(),
                self.pidfd.as_raw_fd(),
                notifier.as_ref().map_or(-1, |n| n.fd()),
            ]
            .into_iter()
            .chain(watched.iter().map(|(fd, _)| *fd))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
            let _ = sys::poll::poll(&mut pfds, -1);
            if pfds[2].revents & libc::POLLIN != 0 {
                if let Some(n) = notifier.as_deref_mut() {
                    n.serve();
                }
            } else if pfds[2].revents != 0 {
                notifier = None;
            }
            self.on_terminal(&pfds[3..], &watched);
            while let Ok(Some(info)) = sfd.read_signal() {
                self.on_signal(&info);
            }
            if pfds[1].revents != 0 {
                return self.reap();
            }
        }
    }

    fn on_terminal(&mut self, pfds: &[libc::pollfd], watched: &[(i32, bool)]) {
        let Some(r) = self.relay.as_mut() else {
            return;
        };
        for (p, (_, is_stdin)) in pfds.iter().zip(watched) {
            if p.revents != 0 {
                if let Event::Escape = r.ready(*is_stdin) {
                    let _ = pidfd_signal(&self.pidfd, libc::SIGKILL);
                }
            }
        }
        if !r.stdin_open() && !self.eof_sent {
            // The end of stdin, as the terminal's end-of-file character.
            self.eof_sent = true;
            let _ = nix::unistd::write(&r.master, &[4u8]);
        }
    }

    /// A signal fwrun got: for the command. Without a pty the command is
    /// in fwrun's process group, so what the terminal sent (si_code
    /// SI_KERNEL) has reached it already.
    fn on_signal(&self, info: &libc::signalfd_siginfo) {
        let sig = info.ssi_signo as i32;
        match (sig, &self.relay) {
            (libc::SIGCHLD, _) => {}
            (libc::SIGWINCH, Some(r)) => console::copy_winsize(&r.master),
            (_, None) if info.ssi_code == libc::SI_KERNEL => {}
            _ => {
                let _ = pidfd_signal(&self.pidfd, sig);
            }
        }
    }

    fn reap(&mut self) -> Result<i32> {
        let status = waitpid(Pid::from_raw(self.pid), None)
            .map_err(|e| anyhow!("waiting for the command: {}", errno_text(e)))?;
        if let Some(r) = self.relay.as_mut() {
            r.drain();
        }
        Ok(match status {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
            _ => LAUNCHER_FAILED,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_on_top_of_the_run_s() {
        let run = vec!["PATH=/bin".to_string(), "HOME=/".to_string()];
        let env = environment(
            &run,
            &[("HOME".into(), "/root".into()), ("V".into(), "1".into())],
        )
        .unwrap();
        let env: Vec<&str> = env.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(env, ["PATH=/bin", "HOME=/root", "V=1"]);
    }
}
