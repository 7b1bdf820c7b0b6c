//! Pure codecs for bootloader environments: bytes in, bytes out.
//!
//! - [`grub`]: the GRUB environment block (`grubenv`), as read by GRUB's
//!   `load_env` and written by `grub-editenv` / `save_env`;
//! - [`uboot`]: the U-Boot environment as stored by U-Boot's `saveenv` and by
//!   `fw_setenv` (libubootenv), single copy or redundant pair.
//!
//! Nothing here touches a device: callers read the bytes (from a file, a
//! partition offset, an MTD/UBI volume), hand them to `parse*`, change
//! variables, and write back what `to_*` returns at the same place and size.
//! Both codecs refuse to grow a block: the size always comes from the caller
//! (normally the size that was read), because the bootloader reads a fixed
//! size and anything past it would be lost or would clobber its neighbour.

pub mod grub;
pub mod uboot;

mod crc32;

/// Why an environment block could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The block is smaller than the format's fixed header allows.
    #[error("{format} environment block of {size} bytes is too small: it needs at least {min}")]
    BadSize {
        /// Which format ("GRUB", "U-Boot").
        format: &'static str,
        /// The size given.
        size: usize,
        /// The smallest size the format accepts.
        min: usize,
    },
    /// A GRUB block that does not start with `# GRUB Environment Block\n`.
    #[error(
        "not a GRUB environment block: it does not start with \"# GRUB Environment Block\\n\""
    )]
    BadHeader,
    /// A GRUB block whose bytes after the last complete line are not all `#`.
    #[error("GRUB environment block is not padded with '#' after its last line (byte {offset} is {byte:#04x})")]
    NotPadded {
        /// Offset of the first offending byte.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// A GRUB line that is not `name=value` (or a `#` comment).
    #[error("invalid GRUB environment line at byte {offset}: {reason}")]
    InvalidLine {
        /// Offset of the start of the line.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A U-Boot entry that is not `name=value`.
    #[error("invalid U-Boot environment entry at data byte {offset}: {reason}")]
    InvalidEntry {
        /// Offset of the start of the entry within the data area.
        offset: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A variable name the format cannot store faithfully.
    #[error("invalid variable name {key:?}: {reason}")]
    InvalidKey {
        /// The name given.
        key: String,
        /// Why the format cannot hold it.
        reason: &'static str,
    },
    /// A value the format cannot store faithfully.
    #[error("invalid value for variable {key:?}: {reason}")]
    InvalidValue {
        /// The variable's name.
        key: String,
        /// Why the format cannot hold the value.
        reason: &'static str,
    },
    /// The variables no longer fit in the block; it is never grown.
    #[error("environment needs {needed} bytes but the block holds only {available}; refusing to grow it")]
    DoesNotFit {
        /// Bytes the encoded variables need.
        needed: usize,
        /// Bytes the block has for them.
        available: usize,
    },
    /// A U-Boot copy whose stored CRC-32 does not match its data area.
    #[error("U-Boot environment CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// The CRC in the header.
        stored: u32,
        /// The CRC of the data area.
        computed: u32,
    },
    /// A U-Boot data area with no empty entry (`\0\0`) ending the list.
    #[error("U-Boot environment data ({size} bytes) has no terminating empty entry")]
    Unterminated {
        /// Size of the data area.
        size: usize,
    },
    /// The two copies of a redundant U-Boot environment differ in size.
    #[error("the redundant U-Boot copies differ in size: {copy0} and {copy1} bytes")]
    SizeMismatch {
        /// Size of copy 0.
        copy0: usize,
        /// Size of copy 1.
        copy1: usize,
    },
    /// Neither copy of a redundant U-Boot environment is valid.
    #[error("both redundant U-Boot environment copies are bad: copy 0: {copy0}; copy 1: {copy1}")]
    BothCopiesBad {
        /// Why copy 0 was rejected.
        copy0: Box<EnvError>,
        /// Why copy 1 was rejected.
        copy1: Box<EnvError>,
    },
}

/// Helpers for the interop tests that run the real tools.
#[cfg(test)]
pub(crate) mod testtools {
    use std::path::PathBuf;
    use std::process::{Command, Output};

    /// The path of `tool`, or a panic naming the Debian package to install.
    /// These tests must not skip silently: a missing tool would turn the
    /// byte-compatibility proof into a no-op.
    pub(crate) fn require(tool: &str, package: &str) -> PathBuf {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
        for dir in dirs {
            let candidate = dir.join(tool);
            if candidate.is_file() {
                return candidate;
            }
        }
        panic!(
            "`{tool}` is not installed; the bootenv interop tests need it: \
             run `apt-get install -y {package}` (the project's test script installs it)"
        );
    }

    /// Run a command and return its output, panicking with stderr when it fails.
    pub(crate) fn run_ok(cmd: &mut Command) -> Output {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed with {}: stdout {:?} stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}
