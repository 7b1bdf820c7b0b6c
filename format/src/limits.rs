//! Limits on what a signed document may declare. Every size and count a
//! manifest, chunk table or channel declares is checked against these
//! before anything is allocated or fetched for it: a document that is
//! validly signed is not therefore reasonable (a stolen key, a broken build
//! pipeline), and the agent must refuse it with a line that says so, never
//! abort. docs/security.md and docs/release-format.md list them.

/// Largest manifest envelope, in bytes (read at most this plus one).
pub const MANIFEST_SIZE_CAP: u64 = 1024 * 1024;
/// Largest chunk table file, in bytes.
pub const CHUNK_TABLE_SIZE_CAP: u64 = 16 * 1024 * 1024;
/// Largest channel document, in bytes.
pub const CHANNEL_SIZE_CAP: u64 = 1024 * 1024;
/// Most images in one release.
pub const MAX_IMAGES: usize = 16;
/// Most signatures on one envelope or kernel statement (each costs a
/// verification).
pub const MAX_SIGNATURES: usize = 16;
/// Most compatible strings a release or channel names.
pub const MAX_COMPATIBLE: usize = 256;
/// Longest product, compatible or channel string.
pub const MAX_STRING: usize = 256;
/// Largest image, uncompressed (1 TiB).
pub const MAX_IMAGE_SIZE: u64 = 1 << 40;
/// Largest uncompressed chunk (64 MiB): the pipeline holds a few chunks in
/// memory at once.
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;
/// Most chunks in one image.
pub const MAX_CHUNKS: u64 = 1 << 22;
/// Largest kernel or initrd (512 MiB): they are copied into memory (sealed
/// memfds) before a kexec.
pub const MAX_BOOT_FILE: u64 = 512 * 1024 * 1024;
/// Longest kernel command line a manifest may carry; the kernel's own limit
/// on x86 is 2048 and the agent appends its slot arguments.
pub const MAX_CMDLINE_LEN: usize = 1536;
/// Largest root document envelope, in bytes.
pub const ROOT_SIZE_CAP: u64 = 512 * 1024;
/// Most root versions accepted in one update: a chain longer than this is
/// refused (a source that serves endless roots cannot keep a device busy).
pub const MAX_ROOT_ROTATIONS: u64 = 32;
/// Most keys one root document lists.
pub const MAX_ROOT_KEYS: usize = 64;
/// Most releases one channel names.
pub const MAX_CHANNEL_RELEASES: usize = 1024;

/// The most a compressed chunk of `size` uncompressed bytes may take: zstd's
/// worst case (`ZSTD_COMPRESSBOUND`: the input, plus 1/256 of it, plus a
/// frame header), with room to spare.
pub fn max_compressed(size: u64) -> u64 {
    size.saturating_add(size >> 7).saturating_add(1024)
}

/// A limit a device sets on what it accepts, and the name of the setting
/// that sets it: a refusal names the setting, which this crate does not
/// otherwise know of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<T> {
    /// The limit.
    pub value: T,
    /// Where it comes from, for the refusal (a configuration key).
    pub setting: &'static str,
}
