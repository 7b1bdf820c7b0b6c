//! The manifest and chunk-table types: the release format, schemas 1 and 2.
//!
//! Schema 2 (written by default) cuts each image into content-defined chunks
//! described by a paged binary index ([`crate::index`]); schema 1 (still
//! read, and written with `release create --schema 1` for agents older than
//! 0.2) cuts fixed-size chunks described by a JSON chunk table.
//!
//! Every struct denies unknown fields: inside one schema version a field this
//! agent does not know is an error, never silently ignored (it might be a
//! constraint the vendor meant to impose). A new field means a new schema.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Sha256Digest;
use crate::envelope::Signature;
use crate::names::check_plain_name;

/// The newest manifest schema this agent reads, and the one it writes.
pub const SCHEMA_VERSION: u64 = 2;
/// The oldest manifest schema this agent reads.
pub const MIN_SCHEMA_VERSION: u64 = 1;
/// The chunk-table schema version.
pub const CHUNK_TABLE_SCHEMA: u64 = 1;

/// A release manifest (the DSSE payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Schema version, 1 or 2.
    pub schema: u64,
    /// Product name, e.g. `gw`.
    pub product: String,
    /// Device compatible strings this release may be installed on.
    pub compatible: Vec<String>,
    /// Release version (semver); never lower than the installed one.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// Monotonic security version; never lower than the highest seen.
    pub security_version: u64,
    /// When the release was signed.
    pub created: DateTime<Utc>,
    /// After this the release is refused (freeze attacks).
    pub expires: DateTime<Utc>,
    /// The oldest agent that may install this release.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub min_agent_version: semver::Version,
    /// The images, one per slot class.
    pub images: Vec<Image>,
    /// The kernel's own signature (present when an image of class `kernel` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelInfo>,
    /// The initrd, pinned by hash (present when an image of class `initrd` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<BlobInfo>,
    /// The kernel command line the release boots with (signed as part of the
    /// manifest; the agent appends the slot's root and `updater.slot=`).
    /// In a UKI release, the UKI's own `.cmdline` section, which the agent
    /// checks against this before a kexec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// A Unified Kernel Image (present when an image of class `uki` is,
    /// instead of `kernel` and `initrd` images): the sections the agent
    /// unpacks to kexec it, each pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uki: Option<UkiInfo>,
    /// An OSTree commit, the release's content for devices whose slots are
    /// OSTree deployments (`slots.backend = "ostree"`), instead of images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ostree: Option<OstreeInfo>,
}

/// An OSTree commit and what the agent needs to deploy and boot it, each
/// pinned: the commit checksum pins the whole tree (content, modes,
/// ownership, xattrs: a Merkle root), provided every object pulled is
/// verified, which the agent's untrusted pulls do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OstreeInfo {
    /// The commit's checksum (64 lowercase hex digits, as ostree writes
    /// it). The device pulls and deploys exactly this commit.
    pub commit: String,
    /// The ref the vendor built it as (`os/x86_64/stable`); the device
    /// records it, and pulls by commit, never by ref.
    #[serde(rename = "ref")]
    pub refname: String,
    /// The OS name (ostree's stateroot) the deployment belongs to.
    pub osname: String,
    /// The archive-mode repository holding the commit's objects, as a URL
    /// relative to the manifest's (`repo`: the folder beside it).
    pub repo: String,
    /// The kernel's path inside the tree (`/usr/lib/modules/KVER/vmlinuz`).
    pub kernel_path: String,
    /// The kernel, signed by kernel-role keys like any release's kernel.
    pub kernel: KernelInfo,
    /// The initrd's path inside the tree, if the tree has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<String>,
    /// The initrd, pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<BlobInfo>,
    /// A static delta that carries the commit, beside the manifest: the
    /// device fetches one file and hashes it before libostree parses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_delta: Option<StaticDelta>,
}

/// An OSTree static delta file, pinned.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StaticDelta {
    /// Its file name, beside the manifest.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of the file.
    pub sha256: Sha256Digest,
    /// The commit it applies to; absent for a delta from nothing (the
    /// whole commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Whether `s` is an OSTree checksum: 64 lowercase hex digits.
pub fn is_ostree_checksum(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A Unified Kernel Image's pins: the whole image (the `uki` image entry
/// pins it too), its `.linux` section signed like a kernel, and its
/// `.initrd` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UkiInfo {
    /// Size of the UKI in bytes.
    pub size: u64,
    /// sha256 of the UKI.
    pub sha256: Sha256Digest,
    /// The `.linux` section (the kernel the agent kexecs), with kernel-role
    /// signatures over its hash and size.
    pub linux: KernelInfo,
    /// The `.initrd` section, if the UKI has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<BlobInfo>,
}

/// How an image file is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Compression {
    /// Independently compressed zstd frames back to back, one per chunk of
    /// the chunk table (the whole file is also a valid zstd stream).
    #[serde(rename = "zstd-chunked")]
    ZstdChunked,
    /// Schema 2: content-defined chunks back to back in index order, each a
    /// zstd frame or, where zstd would not make it smaller, the chunk's own
    /// bytes (its index entry then has `csize == size`).
    #[serde(rename = "zstd-cdc")]
    ZstdCdc,
}

/// One image of the release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Slot class the image is written to (`rootfs`, `kernel`, `initrd`, ...).
    pub class: ClassName,
    /// The image file, relative to the manifest.
    pub file: FileName,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// sha256 of the uncompressed image. Schema 1 agents check it after
    /// writing; with schema 2 the index pins every byte (manifest → root →
    /// page → chunk), so the agent derives the image's integrity from it
    /// instead of hashing the image a second time. It stays for operators
    /// (`sha256sum` of a slot) and pins the kernel and initrd sections.
    pub sha256: Sha256Digest,
    /// How the file is compressed.
    pub compression: Compression,
    /// Size of the file as served.
    pub compressed_size: u64,
    /// sha256 of the file as served (schema 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed_sha256: Option<Sha256Digest>,
    /// The chunk table, pinned by hash (schema 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<ChunkTableRef>,
    /// The chunk index, pinned by its header and root (schema 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexRef>,
}

impl Image {
    /// The number of chunks, whichever the schema.
    pub fn chunk_count(&self) -> u64 {
        match (&self.chunks, &self.index) {
            (Some(t), _) => t.count,
            (None, Some(i)) => i.chunks,
            (None, None) => 0,
        }
    }
}

/// Where an image's chunk index lives (schema 2). The manifest pins the
/// index's header and root by hash; the root pins every page, a page every
/// chunk, so a device can fetch only the pages it does not already have.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IndexRef {
    /// The index file, relative to the manifest.
    pub file: FileName,
    /// The index file's exact size.
    pub size: u64,
    /// Bytes of header and root at its start.
    pub root_size: u64,
    /// sha256 of the header and root.
    pub root_sha256: Sha256Digest,
    /// Number of chunks.
    pub chunks: u64,
}

/// Where an image's chunk table lives, pinned by size and hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChunkTableRef {
    /// The chunk-table file, relative to the manifest.
    pub file: FileName,
    /// Its exact size.
    pub size: u64,
    /// Its sha256.
    pub sha256: Sha256Digest,
    /// Number of chunks.
    pub count: u64,
}

/// The kernel's size, hash and own signatures by kernel-role keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct KernelInfo {
    /// Size of the kernel image in bytes.
    pub size: u64,
    /// sha256 of the kernel image.
    pub sha256: Sha256Digest,
    /// Signatures over PAE(`application/vnd.updater.kernel.v1`,
    /// `"sha256:<hex> size:<n>"`), by kernel-role keys.
    pub signatures: Vec<Signature>,
}

/// A blob pinned by size and hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BlobInfo {
    /// Size in bytes.
    pub size: u64,
    /// sha256.
    pub sha256: Sha256Digest,
}

/// The chunk table of one image (a separate file, pinned by the manifest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChunkTable {
    /// Schema version, 1.
    pub schema: u64,
    /// Uncompressed size of every chunk but the last.
    pub chunk_size: u64,
    /// The chunks in order.
    pub chunks: Vec<Chunk>,
}

/// One independently compressed chunk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Chunk {
    /// Offset of the compressed chunk in the image file.
    pub offset: u64,
    /// Compressed size.
    pub csize: u64,
    /// sha256 of the compressed bytes.
    pub csha256: Sha256Digest,
    /// Uncompressed size.
    pub size: u64,
    /// sha256 of the uncompressed bytes.
    pub sha256: Sha256Digest,
}

/// A plain file name inside the release folder (validated: no `/`, no `..`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileName(
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"))
    )]
    String,
);

impl FileName {
    /// Validate a file name.
    pub fn new(s: &str) -> Result<Self, String> {
        check_plain_name(s, "file name")?;
        Ok(FileName(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FileName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A slot class name: `[a-z0-9_-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClassName(
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[a-z0-9_-]{1,32}$")))] String,
);

impl ClassName {
    /// Validate a class name.
    pub fn new(s: &str) -> Result<Self, String> {
        if s.is_empty()
            || s.len() > 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "image class {s:?} is not a class name (1 to 32 of a-z, 0-9, '_', '-')"
            ));
        }
        Ok(ClassName(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ClassName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ClassName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ClassName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Manifest {
    /// The image of a class.
    pub fn image(&self, class: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.class.as_str() == class)
    }
}
