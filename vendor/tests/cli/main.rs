//! `updater-vendor` as a vendor runs it: one test binary, a module per area.

mod common;
mod demo;
mod openssl;
mod ostree;
mod packaging;
mod release;
mod schema;
