//! Helpers shared by the device's CLI tests: the test kit's workspace and
//! vendor commands, and running the real `updater` binary.
#![allow(dead_code)]

use std::process::Command;

pub use updater_testkit::{openssl_in, pattern, vendor, write, Run, TestEnv};

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
