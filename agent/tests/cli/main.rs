//! The device binary as a user runs it: one test binary, a module per area.
//! The vendor side (keys, releases, channels) comes from the test kit, which
//! runs the vendor commands in-process.

mod common;
mod crash;
mod delta;
mod device;
mod fleet;
mod hardening;
mod hsm;
mod install;
mod json;
mod kexec;
mod newuser;
mod packaging;
mod rejects;
mod root;
mod tls;
mod trial;
mod uefi;
