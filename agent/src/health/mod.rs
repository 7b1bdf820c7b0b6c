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

/// The checks to run, in name order: executable regular files of the folder.
/// A missing folder means no executable checks.
pub fn list_checks(s: &HealthSettings) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(&s.dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let Ok(md) = std::fs::metadata(p) else {
                return false;
            };
            let exec = md.permissions().mode() & 0o111 != 0;
            if md.is_file() && !exec {
                tracing::warn!("{} is not executable; skipped", p.display());
            }
            md.is_file() && exec
        })
        .collect();
    v.sort();
    v
}

/// Run every check; the names of those that passed, or the first failure.
pub fn run_checks(s: &HealthSettings) -> Result<Vec<String>, CheckFailure> {
    let start = Instant::now();
    let mut passed = Vec::new();
    for path in list_checks(s) {
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
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(
            out.try_clone()
                .map_err(|e| fail(e.to_string(), String::new()))?,
        )
        .stderr(out2)
        // Its own process group, so a timeout kills the check's children too.
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}"), String::new()))?;
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
        std::fs::write(d.path().join("README"), "not executable").unwrap();
        let f = run_checks(&settings(d.path())).unwrap_err();
        assert_eq!(f.check, "20-net");
        assert!(f.reason.contains("exit status: 3"), "{f:?}");
        assert!(f.output.contains("no route to gateway"));
        std::fs::remove_file(d.path().join("20-net")).unwrap();
        assert_eq!(
            run_checks(&settings(d.path())).unwrap(),
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
        let f = run_checks(&s).unwrap_err();
        assert!(f.reason.contains("timed out"), "{f:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn no_folder_means_no_checks() {
        let s = settings(std::path::Path::new("/nonexistent/health.d"));
        assert!(run_checks(&s).unwrap().is_empty());
    }
}
