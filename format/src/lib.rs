//! `updater-format`: the signed release format of updater, and its
//! verification.
//!
//! Bytes in, verified values out. Nothing here opens a network connection,
//! writes a file or reads configuration; the only files read are the ones a
//! caller names (a keyring folder, a key file). The device agent and the
//! vendor tooling both build on it, so what one signs the other verifies with
//! the very same code.
//!
//! - [`envelope`]: the DSSE envelope, PAE, signatures and thresholds;
//! - [`keys`]: ed25519 keys in OpenSSL's PEM forms, key ids, the keyring;
//! - [`manifest`]: the release manifest, chunk tables and their verification;
//! - [`chunker`]: content-defined chunking (FastCDC), the same on both sides;
//! - [`index`]: the paged chunk index of a schema-2 image;
//! - [`channel`]: channel documents, their verification and rollout buckets;
//! - [`root`]: the root of trust, its rotation chain and revocation;
//! - [`digest`]: sha256 digests as the format writes them;
//! - [`names`]: validation of names that become paths;
//! - [`cmdline`]: the kernel command line, parsed as the kernel parses it;
//! - [`pe`]: the sections of a PE image (a UKI's kernel, initrd, command line);
//! - [`limits`]: the caps on what a signed document may declare;
//! - [`error`]: the failure classes shared by every command, and exit codes.

pub mod channel;
pub mod chunker;
pub mod cmdline;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod index;
pub mod keys;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod pe;
pub mod root;

pub use digest::Sha256Digest;
