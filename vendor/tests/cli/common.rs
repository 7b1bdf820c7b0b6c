//! Helpers for the vendor CLI tests: the test kit's workspace, and running
//! the real `updater-vendor` binary.
#![allow(dead_code)]

use std::process::Command;

pub use updater_testkit::{openssl_in, ostree, ostree_commit, write, Run, TestEnv};

/// Run `updater-vendor ARGS`.
pub fn tool(args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_updater-vendor"))
        .args(args)
        .output()
        .expect("running updater-vendor")
        .into()
}

/// `updater-vendor verify MANIFEST --keyring ring EXTRA...` in `env`.
pub fn verify(env: &TestEnv, manifest: &str, extra: &[&str]) -> Run {
    let m = env.s(manifest);
    let ring = env.s("ring");
    let mut args = vec!["verify", &m, "--keyring", &ring];
    args.extend_from_slice(extra);
    tool(&args)
}
