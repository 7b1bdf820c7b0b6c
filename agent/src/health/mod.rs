//! Health checks: executables in a folder (each with a time limit) and
//! systemd units that must be active, all within an overall deadline.
//!
//! A check passes when it exits 0 within its time limit. Its output (first
//! 4 KiB of stdout and stderr) is kept so that a failure can be recorded
//! with the check's own explanation.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::HealthSettings;

/// Most output kept from a failed check.
pub const MAX_OUTPUT: usize = 4096;

/// A failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    /// The check's name (file name or `unit:NAME`).
    pub check: String,
    /// Why it failed (exit status, timeout, deadline).
    pub reason: String,
    /// What it printed.
    pub output: String,
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "health check {} failed: {}", self.check, self.reason)?;
        let out = self.output.trim();
        if !out.is_empty() {
            write!(f, "; output: {}", out.replace('\n', " | "))?;
        }
        Ok(())
    }
}

/// Whether a name in the health folder is a check: only letters, digits,
/// `_` and `-`, as run-parts(8) runs them, so that `README.md`,
/// `50-app.dpkg-old` or an editor's `.50-app.swp` are not run — and not
/// counted either.
fn is_check_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The checks to run, in name order. Fails closed: a health folder that does
/// not exist, a check that is not executable, or one that someone else can
/// change is a failed check, never a pass (a mistyped `health.dir` must not
/// commit a trial with "0 checks passed").
pub fn list_checks(s: &HealthSettings, allow_insecure: bool) -> Result<Vec<PathBuf>, CheckFailure> {
    let fail = |check: &str, reason: String| CheckFailure {
        check: check.to_string(),
        reason,
        output: String::new(),
    };
    let rd = std::fs::read_dir(&s.dir).map_err(|e| {
        fail(
            "health.dir",
            format!(
                "the health folder {} cannot be read ({e}); a missing folder is a failure, never a pass: create it (empty if the slot has no checks) or fix health.dir",
                s.dir.display()
            ),
        )
    })?;
    crate::util::perm::check_trusted(&s.dir, "the health folder", allow_insecure)
        .map_err(|e| fail("health.dir", format!("{e:#}")))?;
    let mut v = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_check_name(&name) {
            continue;
        }
        let md = std::fs::metadata(&p)
            .map_err(|err| fail(&name, format!("cannot read {}: {err}", p.display())))?;
        if md.is_dir() {
            continue;
        }
        if md.permissions().mode() & 0o111 == 0 {
            return Err(fail(
                &name,
                format!(
                    "{} is not executable: make it executable (chmod +x), or rename it with a dot (e.g. {name}.disabled) to disable it",
                    p.display()
                ),
            ));
        }
        crate::util::perm::check_trusted(&p, "the health check", allow_insecure)
            .map_err(|err| fail(&name, format!("{err:#}")))?;
        v.push(p);
    }
    v.sort();
    Ok(v)
}

/// Run every check; the names of those that passed, or the first failure.
pub fn run_checks(s: &HealthSettings, allow_insecure: bool) -> Result<Vec<String>, CheckFailure> {
    let start = Instant::now();
    let mut passed = Vec::new();
    for path in list_checks(s, allow_insecure)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let left = s.deadline.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(CheckFailure {
                check: name,
                reason: format!(
                    "the health deadline of {}s passed before it ran",
                    s.deadline.as_secs()
                ),
                output: String::new(),
            });
        }
        let limit = s.check_timeout.min(left);
        let mut cmd = Command::new(&path);
        run_one(&name, &mut cmd, limit)?;
        passed.push(name);
    }
    for unit in &s.required_units {
        let name = format!("unit:{unit}");
        let left = s.deadline.saturating_sub(start.elapsed());
        let mut cmd = Command::new("systemctl");
        cmd.args(["is-active", "--quiet", unit]);
        run_one(
            &name,
            &mut cmd,
            s.check_timeout.min(left).max(Duration::from_secs(1)),
        )?;
        passed.push(name);
    }
    Ok(passed)
}

fn run_one(name: &str, cmd: &mut Command, limit: Duration) -> Result<(), CheckFailure> {
    let fail = |reason: String, output: String| CheckFailure {
        check: name.to_string(),
        reason,
        output,
    };
    // Output goes to an unlinked temp file, not a pipe: a chatty check can
    // never block on a full pipe while we wait for it.
    let mut out = tempfile::tempfile()
        .map_err(|e| fail(format!("cannot capture output: {e}"), String::new()))?;
    let out2 = out
        .try_clone()
        .map_err(|e| fail(format!("cannot capture output: {e}"), String::new()))?;
    cmd.stdin(Stdio::null())
        .stdout(
            out.try_clone()
                .map_err(|e| fail(e.to_string(), String::new()))?,
        )
        .stderr(out2)
        // Its own process group, so a timeout kills the check's children too.
        .process_group(0);
    // The kernel refuses to execute a file that some process still holds
    // open for writing (ETXTBSY): a check written a moment ago, while
    // another thread forked and inherited the descriptor until its exec.
    // That passes in milliseconds, so it is tried again a few times.
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(fail(format!("cannot run it: {e}"), String::new())),
        }
    };
    let began = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if began.elapsed() >= limit => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail(format!("waiting for it: {e}"), String::new())),
        }
    };
    if status.is_none() {
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    }
    let mut output = Vec::new();
    let _ = out.seek(SeekFrom::Start(0));
    let _ = out.take(MAX_OUTPUT as u64).read_to_end(&mut output);
    let output = String::from_utf8_lossy(&output).into_owned();
    match status {
        None => Err(fail(
            format!("timed out after {}s", limit.as_secs_f64()),
            output,
        )),
        Some(st) if st.success() => Ok(()),
        Some(st) => Err(fail(format!("exited with {st}"), output)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &std::path::Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn settings(dir: &std::path::Path) -> HealthSettings {
        HealthSettings {
            dir: dir.to_path_buf(),
            check_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
            required_units: vec![],
            reboot_on_failure: true,
        }
    }

    #[test]
    fn checks_run_in_order_and_the_first_failure_is_reported_with_output() {
        let d = tempfile::tempdir().unwrap();
        script(d.path(), "10-ok", "exit 0");
        script(d.path(), "20-net", "echo no route to gateway >&2; exit 3");
        script(d.path(), "30-never", "exit 0");
        std::fs::write(d.path().join("README.md"), "not a check").unwrap();
        let f = run_checks(&settings(d.path()), false).unwrap_err();
        assert_eq!(f.check, "20-net");
        assert!(f.reason.contains("exit status: 3"), "{f:?}");
        assert!(f.output.contains("no route to gateway"));
        std::fs::remove_file(d.path().join("20-net")).unwrap();
        assert_eq!(
            run_checks(&settings(d.path()), false).unwrap(),
            vec!["10-ok", "30-never"]
        );
    }

    #[test]
    fn a_hanging_check_times_out_and_is_killed_with_its_children() {
        let d = tempfile::tempdir().unwrap();
        script(d.path(), "10-hang", "sleep 30 & sleep 30");
        let t = Instant::now();
        let mut s = settings(d.path());
        s.check_timeout = Duration::from_millis(300);
        let f = run_checks(&s, false).unwrap_err();
        assert!(f.reason.contains("timed out"), "{f:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_folder_or_a_bad_check_fails_closed() {
        let s = settings(std::path::Path::new("/nonexistent/health.d"));
        let f = run_checks(&s, false).unwrap_err();
        assert_eq!(f.check, "health.dir");
        assert!(f.reason.contains("never a pass"), "{f:?}");
        let d = tempfile::tempdir().unwrap();
        // An empty folder is no checks: the slot relies on required units.
        assert!(run_checks(&settings(d.path()), false).unwrap().is_empty());
        // A check that lost its execute bit fails.
        std::fs::write(d.path().join("20-app"), "#!/bin/sh\nexit 0\n").unwrap();
        let f = run_checks(&settings(d.path()), false).unwrap_err();
        assert!(
            f.check == "20-app" && f.reason.contains("not executable"),
            "{f:?}"
        );
        // A check anyone can change fails, unless the config allows it.
        std::fs::set_permissions(
            d.path().join("20-app"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let f = run_checks(&settings(d.path()), false).unwrap_err();
        assert!(f.reason.contains("writable by every user"), "{f:?}");
        assert_eq!(
            run_checks(&settings(d.path()), true).unwrap(),
            vec!["20-app"]
        );
    }
}
