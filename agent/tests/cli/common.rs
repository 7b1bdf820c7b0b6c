//! Helpers shared by the device's CLI tests: the test kit's workspace and
//! vendor commands, and running the real `updater` binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

pub use updater_testkit::{openssl_in, ostree_commit, pattern, vendor, write, Run, TestEnv};

/// The device binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_updater")
}

/// Run `updater ARGS`; it can never restart this machine.
pub fn updater(args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .env_remove("UPDATER_LOG")
        .env(updater::trial::reboot::NO_REAL_RESTART_ENV, "1")
        .output()
        .expect("running updater")
        .into()
}

/// `updater verify` of a release in a test workspace against its keyring.
pub trait Verify {
    /// `updater verify MANIFEST --keyring ring EXTRA...`.
    fn verify(&self, manifest: &str, extra: &[&str]) -> Run;
}

impl Verify for TestEnv {
    fn verify(&self, manifest: &str, extra: &[&str]) -> Run {
        let m = self.s(manifest);
        let ring = self.s("ring");
        let mut args = vec!["verify", &m, "--keyring", &ring];
        args.extend_from_slice(extra);
        updater(&args)
    }
}

/// Where a skipped test leaves its reason: `target/test-skips/`, a file
/// `MODULE::TEST.txt` per test, holding the line [`can_run`] printed.
pub fn skips_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is TARGET/tmp")
        .join("test-skips")
}

/// The running test's name as the test harness names its thread
/// (`MODULE::TEST`).
fn test_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("unnamed-test")
        .to_string()
}

/// Whether the running test can go on on this machine. When `ok` is
/// false, the test is skipped and says so, and why: the line
/// `SKIPPED MODULE::TEST: WHY` goes to the process's stderr directly (the
/// harness captures only `eprintln!`, so the line shows in the test run
/// among the results) and into `target/test-skips/MODULE::TEST.txt`; with
/// `UPDATER_NO_SKIP` set, the skip is a failure instead (for machines where
/// every test must run). When `ok`, a skip an earlier run recorded for the
/// test is removed. The caller returns at once when this is false.
pub fn can_run(ok: bool, why: &str) -> bool {
    let name = test_name();
    let record = skips_dir().join(format!("{name}.txt"));
    if ok {
        let _ = std::fs::remove_file(&record);
        return true;
    }
    let line = format!("SKIPPED {name}: {why}");
    assert!(
        std::env::var_os("UPDATER_NO_SKIP").is_none(),
        "{line} (UPDATER_NO_SKIP is set: every test must run here)"
    );
    let _ = writeln!(std::io::stderr(), "{line}");
    std::fs::create_dir_all(skips_dir()).expect("creating target/test-skips");
    std::fs::write(&record, format!("{line}\n")).expect("recording a skip");
    false
}
