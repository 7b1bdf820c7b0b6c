//! The CLI as a user runs it: one test binary, a module per area.

mod common;
mod demo;
mod fleet;
mod install;
mod kexec;
mod openssl;
mod packaging;
mod rejects;
mod release;
mod schema;
mod tls;
mod trial;
