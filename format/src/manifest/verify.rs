//! Verifying a release: envelope signatures, manifest structure, the device's
//! policy (expiry, compatibility, anti-rollback), chunk tables and kernels.
//!
//! The order matters: the size cap is applied before parsing, signatures are
//! checked before the payload is parsed as a manifest (so an attacker's JSON
//! never reaches the manifest parser unsigned), and everything here runs
//! before any image byte is requested.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::types::{
    ChunkTable, ChunkTableRef, Compression, Image, IndexRef, Manifest, CHUNK_TABLE_SCHEMA,
    MIN_SCHEMA_VERSION, SCHEMA_VERSION,
};
use crate::digest::Sha256Digest;
use crate::envelope::{verify_threshold, Envelope, Signature, MANIFEST_PAYLOAD_TYPE};
use crate::error::Rejected;
use crate::keys::{Keyring, Role};

use crate::limits;
pub use crate::limits::{CHUNK_TABLE_SIZE_CAP, MANIFEST_SIZE_CAP, MAX_CMDLINE_LEN};
use crate::names::check_plain_name;
/// The payload type of the kernel signature statement.
pub const KERNEL_PAYLOAD_TYPE: &str = "application/vnd.updater.kernel.v1";
/// Clock skew tolerated on `created` (a device clock a little behind the
/// signing host must not refuse a fresh release).
pub const CREATED_SKEW_SECS: i64 = 300;

/// The statement a kernel-role key signs: the kernel's sha256 and size. The
/// agent recomputes both over the sealed kernel bytes before kexec, so this
/// is a signature over the kernel itself, checkable before it is downloaded.
pub fn kernel_statement(sha256: &Sha256Digest, size: u64) -> Vec<u8> {
    format!("sha256:{} size:{size}", sha256.hex()).into_bytes()
}

/// A manifest whose signatures and structure have been checked.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// sha256 of the signed payload: the release's identity.
    pub digest: Sha256Digest,
    /// Ids of the manifest-role keys that signed.
    pub signed_by: Vec<String>,
    /// Ids of the kernel-role keys that signed the kernel.
    pub kernel_signed_by: Vec<String>,
}

/// What the device knows that a release must agree with.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The device clock.
    pub now: DateTime<Utc>,
    /// The device's compatible string (None: not checked, for vendor tools).
    pub compatible: Option<String>,
    /// The installed (highest) version; a lower one is a downgrade.
    pub installed_version: Option<semver::Version>,
    /// The highest security_version seen; a lower one is refused.
    pub min_security_version: u64,
    /// The version of the agent that would install the release; a manifest
    /// whose `min_agent_version` is higher is refused (None: not checked).
    pub agent_version: Option<semver::Version>,
    /// The longest validity (`expires - created`) accepted (None: not
    /// checked): an expiry years ahead would switch freeze detection off.
    pub max_validity: Option<crate::limits::Limit<Duration>>,
    /// The most a release may raise security_version above
    /// `min_security_version` (None: not checked): one signed release with
    /// an absurd value would otherwise lock out every genuine one.
    pub max_security_step: Option<crate::limits::Limit<u64>>,
}

impl Policy {
    /// A policy that checks only the time window at `now` (signing and
    /// inspection tools).
    pub fn at(now: DateTime<Utc>) -> Policy {
        Policy {
            now,
            compatible: None,
            installed_version: None,
            min_security_version: 0,
            max_security_step: None,
            agent_version: None,
            max_validity: None,
        }
    }
}

/// Verify an envelope's bytes against the keyring and the policy.
pub fn verify(bytes: &[u8], keyring: &Keyring, policy: &Policy) -> Result<Verified, Rejected> {
    let v = open(bytes, keyring)?;
    check_policy(&v.manifest, policy)?;
    Ok(v)
}

/// Check size, envelope, signatures and manifest structure (not the policy).
pub fn open(bytes: &[u8], keyring: &Keyring) -> Result<Verified, Rejected> {
    if bytes.len() as u64 > MANIFEST_SIZE_CAP {
        return Err(Rejected::TooLarge {
            what: "manifest",
            size: bytes.len() as u64,
            cap: MANIFEST_SIZE_CAP,
        });
    }
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| Rejected::Malformed {
        what: "envelope",
        reason: e.to_string(),
    })?;
    if env.payload_type != MANIFEST_PAYLOAD_TYPE {
        return Err(Rejected::PayloadType {
            found: env.payload_type,
            expected: MANIFEST_PAYLOAD_TYPE,
        });
    }
    let payload = env.payload_bytes()?;
    let signed_by = verify_threshold(
        MANIFEST_PAYLOAD_TYPE,
        &payload,
        &env.signatures,
        keyring,
        Role::Manifest,
    )?;
    let manifest = parse_manifest(&payload)?;
    check_structure(&manifest)?;
    let kernel_signed_by = match (&manifest.kernel, &manifest.uki, &manifest.ostree) {
        (Some(k), _, _) => verify_kernel_statement(&k.sha256, k.size, &k.signatures, keyring)?,
        (None, Some(u), _) => {
            verify_kernel_statement(&u.linux.sha256, u.linux.size, &u.linux.signatures, keyring)?
        }
        (None, None, Some(o)) => verify_kernel_statement(
            &o.kernel.sha256,
            o.kernel.size,
            &o.kernel.signatures,
            keyring,
        )?,
        (None, None, None) => Vec::new(),
    };
    Ok(Verified {
        digest: Sha256Digest::of(&payload),
        manifest,
        signed_by,
        kernel_signed_by,
    })
}

/// Parse a manifest payload (signed bytes), refusing unknown schemas first so
/// that a newer manifest gets "upgrade the agent", not "unknown field".
pub fn parse_manifest(payload: &[u8]) -> Result<Manifest, Rejected> {
    #[derive(Deserialize)]
    struct SchemaOnly {
        schema: u64,
    }
    let malformed = |e: serde_json::Error| Rejected::Malformed {
        what: "manifest",
        reason: e.to_string(),
    };
    let head: SchemaOnly = serde_json::from_slice(payload).map_err(malformed)?;
    if !(MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&head.schema) {
        return Err(Rejected::Schema {
            found: head.schema,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(payload).map_err(malformed)
}

/// Verify the kernel-role signatures over a kernel's hash and size.
pub fn verify_kernel_statement(
    sha256: &Sha256Digest,
    size: u64,
    signatures: &[Signature],
    keyring: &Keyring,
) -> Result<Vec<String>, Rejected> {
    verify_threshold(
        KERNEL_PAYLOAD_TYPE,
        &kernel_statement(sha256, size),
        signatures,
        keyring,
        Role::Kernel,
    )
}

fn invalid(msg: impl Into<String>) -> Rejected {
    Rejected::Invalid(msg.into())
}

/// Rules the types alone cannot express.
pub fn check_structure(m: &Manifest) -> Result<(), Rejected> {
    if m.product.trim().is_empty() {
        return Err(invalid("product is empty"));
    }
    if m.compatible.is_empty() || m.compatible.iter().any(|c| c.trim().is_empty()) {
        return Err(invalid(
            "compatible must list at least one non-empty string",
        ));
    }
    if m.compatible.len() > limits::MAX_COMPATIBLE {
        return Err(invalid(format!(
            "compatible lists {} strings, more than the {} allowed",
            m.compatible.len(),
            limits::MAX_COMPATIBLE
        )));
    }
    if let Some(s) = std::iter::once(&m.product)
        .chain(&m.compatible)
        .find(|s| s.len() > limits::MAX_STRING)
    {
        return Err(invalid(format!(
            "a product or compatible string is {} bytes, over the {}-byte limit",
            s.len(),
            limits::MAX_STRING
        )));
    }
    if m.images.len() > limits::MAX_IMAGES {
        return Err(invalid(format!(
            "the release has {} images, more than the {} allowed",
            m.images.len(),
            limits::MAX_IMAGES
        )));
    }
    for (what, size) in [
        ("kernel", m.kernel.as_ref().map(|k| k.size)),
        ("initrd", m.initrd.as_ref().map(|i| i.size)),
    ] {
        if let Some(size) = size.filter(|s| *s > limits::MAX_BOOT_FILE) {
            return Err(invalid(format!(
                "the {what} is {size} bytes, over the {}-byte limit for a kernel or initrd",
                limits::MAX_BOOT_FILE
            )));
        }
    }
    if m.expires <= m.created {
        return Err(invalid(format!(
            "expires ({}) is not after created ({})",
            m.expires, m.created
        )));
    }
    if let Some(o) = &m.ostree {
        check_ostree(m, o)?;
    } else if m.images.is_empty() {
        return Err(invalid("the release has no images"));
    }
    let mut classes = BTreeSet::new();
    let mut files = BTreeSet::new();
    for img in &m.images {
        if !classes.insert(img.class.as_str()) {
            return Err(invalid(format!("image class {} appears twice", img.class)));
        }
        check_image_layout(m.schema, img)?;
        let meta = img
            .chunks
            .as_ref()
            .map(|c| &c.file)
            .or(img.index.as_ref().map(|i| &i.file));
        for f in std::iter::once(&img.file).chain(meta).map(|f| f.as_str()) {
            if f == "manifest.json" || !files.insert(f) {
                return Err(invalid(format!("file name {f} is used twice")));
            }
        }
        check_image_sizes(img)?;
    }
    match (&m.kernel, m.image("kernel")) {
        (Some(k), Some(img)) if k.sha256 == img.sha256 && k.size == img.size => {}
        (Some(_), Some(_)) => {
            return Err(invalid(
                "the kernel section does not match the kernel image's size and sha256",
            ))
        }
        (Some(_), None) => return Err(invalid("a kernel section without a kernel image")),
        (None, Some(_)) => {
            return Err(invalid(
                "the kernel image has no kernel section with its signature",
            ))
        }
        (None, None) => {}
    }
    match (&m.initrd, m.image("initrd")) {
        (Some(i), Some(img)) if i.sha256 == img.sha256 && i.size == img.size => {}
        (Some(_), Some(_)) => {
            return Err(invalid(
                "the initrd section does not match the initrd image's size and sha256",
            ))
        }
        (Some(_), None) => return Err(invalid("an initrd section without an initrd image")),
        (None, Some(_)) => {
            return Err(invalid(
                "the initrd image is not pinned by an initrd section",
            ))
        }
        (None, None) => {}
    }
    match (&m.uki, m.image("uki")) {
        (Some(u), Some(img)) if u.sha256 == img.sha256 && u.size == img.size => {
            if m.kernel.is_some() || m.initrd.is_some() {
                return Err(invalid(
                    "a release carries a UKI or a kernel and an initrd, not both",
                ));
            }
            let inner = [Some(u.linux.size), u.initrd.as_ref().map(|i| i.size)];
            if inner.iter().flatten().sum::<u64>() > u.size {
                return Err(invalid("the UKI's sections are larger than the UKI itself"));
            }
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "the uki section does not match the uki image's size and sha256",
            ))
        }
        (Some(_), None) => return Err(invalid("a uki section without a uki image")),
        (None, Some(_)) => {
            return Err(invalid(
                "the uki image has no uki section with its kernel's signature",
            ))
        }
        (None, None) => {}
    }
    if let Some(u) = m.uki.as_ref().filter(|u| u.size > limits::MAX_BOOT_FILE) {
        return Err(invalid(format!(
            "the uki is {} bytes, over the {}-byte limit for a boot file",
            u.size,
            limits::MAX_BOOT_FILE
        )));
    }
    if let Some(c) = &m.cmdline {
        check_cmdline(c)?;
    }
    Ok(())
}

/// An OSTree release carries the commit and nothing else to install: no
/// images, and its kernel and initrd inside the tree. Every name that
/// becomes a path or a URL is checked: the repository is relative to the
/// manifest, paths in the tree are absolute and plain, the delta file is a
/// plain name beside the manifest.
fn check_ostree(m: &Manifest, o: &super::types::OstreeInfo) -> Result<(), Rejected> {
    use super::types::is_ostree_checksum;
    if !m.images.is_empty() || m.kernel.is_some() || m.initrd.is_some() || m.uki.is_some() {
        return Err(invalid(
            "an OSTree release carries its kernel and initrd inside the commit: it has no images, kernel, initrd or uki sections",
        ));
    }
    if !is_ostree_checksum(&o.commit) {
        return Err(invalid(format!(
            "ostree.commit {:?} is not an OSTree checksum (64 lowercase hex digits)",
            o.commit
        )));
    }
    let printable =
        |v: &str| !v.is_empty() && v.len() <= 256 && v.bytes().all(|b| b.is_ascii_graphic());
    if !printable(&o.refname) {
        return Err(invalid(format!(
            "ostree.ref {:?} is empty, too long or has spaces or control characters",
            o.refname
        )));
    }
    check_plain_name(&o.osname, "ostree.osname").map_err(invalid)?;
    let repo_ok = printable(&o.repo)
        && !o.repo.starts_with('/')
        && !o.repo.contains("://")
        && !o.repo.contains(['?', '#', '\\']);
    if !repo_ok {
        return Err(invalid(format!(
            "ostree.repo {:?} is not a URL relative to the manifest's (a path such as `repo` or `../repo`)",
            o.repo
        )));
    }
    let tree_path = |what: &str, p: &str| -> Result<(), Rejected> {
        let plain = p.starts_with('/')
            && printable(p)
            && p[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if plain {
            Ok(())
        } else {
            Err(invalid(format!(
                "ostree.{what} {p:?} is not an absolute path inside the tree without `.`, `..` or empty parts"
            )))
        }
    };
    tree_path("kernel_path", &o.kernel_path)?;
    for (what, size) in [
        ("kernel", Some(o.kernel.size)),
        ("initrd", o.initrd.as_ref().map(|i| i.size)),
    ] {
        if let Some(size) = size.filter(|s| *s > limits::MAX_BOOT_FILE) {
            return Err(invalid(format!(
                "the ostree {what} is {size} bytes, over the {}-byte limit for a boot file",
                limits::MAX_BOOT_FILE
            )));
        }
    }
    match (&o.initrd_path, &o.initrd) {
        (Some(p), Some(_)) => tree_path("initrd_path", p)?,
        (None, None) => {}
        _ => {
            return Err(invalid(
                "ostree.initrd_path and ostree.initrd come together: the path names the file the pin is of",
            ))
        }
    }
    if let Some(d) = &o.static_delta {
        check_plain_name(&d.file, "ostree.static_delta.file").map_err(invalid)?;
        if d.file == "manifest.json" {
            return Err(invalid("ostree.static_delta.file is manifest.json"));
        }
        if let Some(from) = &d.from {
            if !is_ostree_checksum(from) || *from == o.commit {
                return Err(invalid(format!(
                    "ostree.static_delta.from {from:?} is not an OSTree checksum of another commit"
                )));
            }
        }
    }
    Ok(())
}

/// A manifest command line must fit, hold no NUL or newline, parse as the
/// kernel parses it (balanced quotes), carry no `--` (what follows it goes to
/// init, so the root and slot the agent appends would not reach the kernel),
/// and leave `updater.slot=`/`updater.trial=` to the agent — also when
/// written in quotes, which the kernel strips.
pub fn check_cmdline(c: &str) -> Result<(), Rejected> {
    if c.len() > MAX_CMDLINE_LEN {
        return Err(invalid(format!(
            "cmdline is {} bytes, over the {MAX_CMDLINE_LEN}-byte limit",
            c.len()
        )));
    }
    if c.bytes().any(|b| b == 0 || b == b'\n' || b == b'\r') {
        return Err(invalid("cmdline contains a NUL or line break"));
    }
    let params = crate::cmdline::parse(c).map_err(|e| invalid(format!("cmdline: {e}")))?;
    if params.iter().any(|p| p.raw == "--") {
        return Err(invalid(
            "cmdline contains \"--\", after which the kernel passes everything to init; the agent's root= and updater.slot= would not reach the kernel",
        ));
    }
    if params
        .iter()
        .any(|p| p.key == "updater.slot" || p.key == "updater.trial")
    {
        return Err(invalid(
            "cmdline sets updater.slot= or updater.trial=, which only the agent may set",
        ));
    }
    Ok(())
}

/// Each schema has its own image fields: a schema-1 image a chunk table and
/// the served file's hash, a schema-2 image an index, and never both.
fn check_image_layout(schema: u64, img: &Image) -> Result<(), Rejected> {
    let ok = match schema {
        1 => {
            img.compression == Compression::ZstdChunked
                && img.chunks.is_some()
                && img.compressed_sha256.is_some()
                && img.index.is_none()
        }
        _ => {
            img.compression == Compression::ZstdCdc
                && img.index.is_some()
                && img.chunks.is_none()
                && img.compressed_sha256.is_none()
        }
    };
    if ok {
        return Ok(());
    }
    let want = if schema == 1 {
        "compression \"zstd-chunked\", chunks and compressed_sha256"
    } else {
        "compression \"zstd-cdc\" and an index (no chunks, no compressed_sha256)"
    };
    Err(invalid(format!(
        "image {} does not have the fields of a schema-{schema} image: {want}",
        img.class
    )))
}

fn check_image_sizes(img: &Image) -> Result<(), Rejected> {
    if img.size > limits::MAX_IMAGE_SIZE {
        return Err(invalid(format!(
            "image {} is {} bytes, over the {}-byte limit",
            img.class,
            img.size,
            limits::MAX_IMAGE_SIZE
        )));
    }
    let count = img.chunk_count();
    if count > limits::MAX_CHUNKS {
        return Err(invalid(format!(
            "image {} declares {count} chunks, more than the {} allowed",
            img.class,
            limits::MAX_CHUNKS
        )));
    }
    if count == 0 {
        return Err(invalid(format!("image {} has no chunks", img.class)));
    }
    // Every chunk holds at least one byte, compressed and not.
    if count > img.size.max(1) || count > img.compressed_size {
        return Err(invalid(format!(
            "image {} declares {count} chunks for {} bytes",
            img.class, img.size
        )));
    }
    if let Some(c) = &img.chunks {
        check_table_ref(img, c)?;
    }
    if let Some(x) = &img.index {
        check_index_ref(img, x)?;
    }
    Ok(())
}

fn check_table_ref(img: &Image, c: &ChunkTableRef) -> Result<(), Rejected> {
    if c.size > CHUNK_TABLE_SIZE_CAP {
        return Err(invalid(format!(
            "image {} chunk table is {} bytes, over the {CHUNK_TABLE_SIZE_CAP}-byte limit",
            img.class, c.size
        )));
    }
    Ok(())
}

/// The index's declared sizes must be the ones its format implies: a header,
/// one root entry per page (at least one chunk a page, at most
/// [`crate::index::PAGE_MAX`]), and one entry per chunk.
fn check_index_ref(img: &Image, x: &IndexRef) -> Result<(), Rejected> {
    use crate::index::{ENTRY_LEN, HEADER_LEN, PAGE_MAX, ROOT_ENTRY_LEN};
    let pages = (x.root_size.saturating_sub(HEADER_LEN as u64)) / ROOT_ENTRY_LEN as u64;
    let shape = x.root_size >= (HEADER_LEN + ROOT_ENTRY_LEN) as u64
        && (x.root_size - HEADER_LEN as u64).is_multiple_of(ROOT_ENTRY_LEN as u64)
        && pages <= x.chunks
        && x.chunks <= pages.saturating_mul(PAGE_MAX as u64)
        && Some(x.size)
            == x.chunks
                .checked_mul(ENTRY_LEN as u64)
                .and_then(|b| b.checked_add(x.root_size));
    if !shape {
        return Err(invalid(format!(
            "image {} index sizes do not fit together ({} bytes, {} of them root, for {} chunks)",
            img.class, x.size, x.root_size, x.chunks
        )));
    }
    Ok(())
}

/// Check an index's header and root, fetched by the caller, against the
/// image entry that pins them: the bytes' hash, then the counts and sizes
/// the root declares.
pub fn check_index_root(bytes: &[u8], img: &Image) -> Result<crate::index::Root, Rejected> {
    let x = img
        .index
        .as_ref()
        .ok_or_else(|| invalid(format!("image {} has no chunk index", img.class)))?;
    let what = format!("chunk index {}", x.file);
    let got = Sha256Digest::of(bytes);
    if bytes.len() as u64 != x.root_size || got != x.root_sha256 {
        return Err(Rejected::Mismatch {
            what,
            reason: format!(
                "its header and root are {} bytes with sha256 {got}, the manifest pins {} bytes with sha256 {} (tampered, or from another release)",
                bytes.len(),
                x.root_size,
                x.root_sha256
            ),
        });
    }
    let root = crate::index::parse_root(bytes)?;
    if root.chunks != x.chunks
        || root.image_size != img.size
        || root.compressed_size != img.compressed_size
        || root.file_size() != x.size
    {
        return Err(Rejected::Mismatch {
            what,
            reason: format!(
                "it declares {} chunks, {} bytes ({} compressed), {} bytes of index; the manifest says {}, {} ({}), {}",
                root.chunks,
                root.image_size,
                root.compressed_size,
                root.file_size(),
                x.chunks,
                img.size,
                img.compressed_size,
                x.size
            ),
        });
    }
    Ok(root)
}

/// Parse and check a chunk table against its image entry: contiguous offsets,
/// sizes that add up to the manifest's, one chunk size for all but the last.
/// The caller has already checked the table's bytes against the pinned hash.
pub fn check_chunk_table(bytes: &[u8], img: &Image) -> Result<ChunkTable, Rejected> {
    let tref = img
        .chunks
        .as_ref()
        .ok_or_else(|| invalid(format!("image {} has no chunk table", img.class)))?;
    let what = format!("chunk table {}", tref.file);
    let table: ChunkTable = serde_json::from_slice(bytes).map_err(|e| Rejected::Mismatch {
        what: what.clone(),
        reason: format!("does not parse: {e}"),
    })?;
    let bad = |reason: String| Rejected::Mismatch {
        what: what.clone(),
        reason,
    };
    if table.schema != CHUNK_TABLE_SCHEMA {
        return Err(bad(format!(
            "schema {} is not {CHUNK_TABLE_SCHEMA}",
            table.schema
        )));
    }
    if table.chunks.len() as u64 != tref.count {
        return Err(bad(format!(
            "has {} chunks, the manifest says {}",
            table.chunks.len(),
            tref.count
        )));
    }
    if table.chunk_size == 0 {
        return Err(bad("chunk_size is 0".into()));
    }
    if table.chunk_size > limits::MAX_CHUNK_SIZE {
        return Err(bad(format!(
            "chunk_size is {} bytes, over the {}-byte limit",
            table.chunk_size,
            limits::MAX_CHUNK_SIZE
        )));
    }
    let (mut off, mut total) = (0u64, 0u64);
    let last = table.chunks.len() - 1;
    for (i, ch) in table.chunks.iter().enumerate() {
        if ch.offset != off {
            return Err(bad(format!(
                "chunk {i} starts at {}, expected {off}",
                ch.offset
            )));
        }
        let size_ok = if i == last {
            ch.size >= 1 && ch.size <= table.chunk_size
        } else {
            ch.size == table.chunk_size
        };
        if !size_ok || ch.csize == 0 || ch.csize > limits::max_compressed(ch.size) {
            return Err(bad(format!(
                "chunk {i} has size {} / {} compressed",
                ch.size, ch.csize
            )));
        }
        off = off
            .checked_add(ch.csize)
            .ok_or_else(|| bad("offsets overflow".into()))?;
        total = total
            .checked_add(ch.size)
            .ok_or_else(|| bad("sizes overflow".into()))?;
    }
    if off != img.compressed_size || total != img.size {
        return Err(bad(format!(
            "chunks add up to {total} bytes ({off} compressed), the manifest says {} ({})",
            img.size, img.compressed_size
        )));
    }
    Ok(table)
}

/// The release policy: time window, hardware, anti-rollback, agent version.
pub fn check_policy(m: &Manifest, p: &Policy) -> Result<(), Rejected> {
    if m.created > p.now + Duration::seconds(CREATED_SKEW_SECS) {
        return Err(Rejected::NotYetValid {
            created: m.created.to_rfc3339(),
            now: p.now.to_rfc3339(),
        });
    }
    if p.now >= m.expires {
        return Err(Rejected::Expired {
            expires: m.expires.to_rfc3339(),
            now: p.now.to_rfc3339(),
        });
    }
    if let Some(max) = p.max_validity {
        if m.expires - m.created > max.value {
            return Err(Rejected::Invalid(format!(
                "the release is valid for {} days ({} to {}), longer than the {} days this device accepts ({}); ask the vendor to sign it with a shorter --expires",
                (m.expires - m.created).num_days(),
                m.created.to_rfc3339(),
                m.expires.to_rfc3339(),
                max.value.num_days(),
                max.setting
            )));
        }
    }
    if let Some(dev) = &p.compatible {
        if !m.compatible.iter().any(|c| c == dev) {
            return Err(Rejected::Incompatible {
                release: m.compatible.clone(),
                device: dev.clone(),
            });
        }
    }
    if let Some(inst) = &p.installed_version {
        if m.version < *inst {
            return Err(Rejected::Downgrade {
                what: "version",
                offered: m.version.to_string(),
                installed: inst.to_string(),
            });
        }
    }
    if m.security_version < p.min_security_version {
        return Err(Rejected::Downgrade {
            what: "security_version",
            offered: m.security_version.to_string(),
            installed: p.min_security_version.to_string(),
        });
    }
    if let Some(step) = p.max_security_step {
        if m.security_version > p.min_security_version.saturating_add(step.value) {
            return Err(Rejected::Invalid(format!(
                "security_version {} is more than {} above this device's floor {}: a release may raise it by at most {} (a root version can allow a larger step with max_security_step)",
                m.security_version, step.value, p.min_security_version, step.setting
            )));
        }
    }
    if let Some(running) = &p.agent_version {
        if m.min_agent_version > *running {
            return Err(Rejected::AgentTooOld {
                required: m.min_agent_version.to_string(),
                running: running.to_string(),
            });
        }
    }
    Ok(())
}

impl Verified {
    /// A JSON summary of the verified release (what `verify --json` prints).
    pub fn summary(&self) -> serde_json::Value {
        let m = &self.manifest;
        serde_json::json!({
            "ok": true,
            "schema": m.schema,
            "digest": self.digest.hex(),
            "product": m.product,
            "version": m.version.to_string(),
            "security_version": m.security_version,
            "compatible": m.compatible,
            "created": m.created.to_rfc3339(),
            "expires": m.expires.to_rfc3339(),
            "min_agent_version": m.min_agent_version.to_string(),
            "signed_by": self.signed_by,
            "kernel_signed_by": self.kernel_signed_by,
            "images": m.images.iter().map(|i| serde_json::json!({
                "class": i.class.as_str(),
                "file": i.file.as_str(),
                "size": i.size,
                "sha256": i.sha256.hex(),
                "compressed_size": i.compressed_size,
                "chunks": i.chunk_count(),
            })).collect::<Vec<_>>(),
            "cmdline": m.cmdline,
        })
    }

    /// The verified release in a few lines of text (what `verify` prints).
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let m = &self.manifest;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "OK: {} {} (security version {})",
            m.product, m.version, m.security_version
        );
        let _ = writeln!(out, "  digest    sha256:{}", self.digest);
        let _ = writeln!(out, "  for       {}", m.compatible.join(", "));
        let _ = writeln!(
            out,
            "  valid     {} .. {}",
            m.created.to_rfc3339(),
            m.expires.to_rfc3339()
        );
        let _ = writeln!(out, "  signed by {} manifest key(s)", self.signed_by.len());
        if !self.kernel_signed_by.is_empty() {
            let _ = writeln!(
                out,
                "  kernel    signed by {} kernel key(s)",
                self.kernel_signed_by.len()
            );
        }
        for i in &m.images {
            let _ = writeln!(
                out,
                "  image     {:<8} {:>12} bytes  sha256:{}",
                i.class, i.size, i.sha256
            );
        }
        out
    }
}

/// Read a manifest file with the size cap applied while reading, so that a
/// huge file is refused without being read whole.
pub fn read_capped(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MANIFEST_SIZE_CAP + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MANIFEST_SIZE_CAP {
        return Err(Rejected::TooLarge {
            what: "manifest",
            size: bytes.len() as u64,
            cap: MANIFEST_SIZE_CAP,
        }
        .into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod ostree_tests {
    use super::*;

    const COMMIT: &str = "2aff9a657d1bd60703bb2067db55d22da040e0e3bea5e1401550e6d101955b7d";

    /// An OSTree release's manifest, altered by `edit`.
    fn manifest(edit: impl FnOnce(&mut serde_json::Value)) -> Manifest {
        let sha = "ab".repeat(32);
        let mut v = serde_json::json!({
            "schema": 2, "product": "gw", "compatible": ["acme-gw"], "version": "1.2.0",
            "security_version": 5, "created": "2026-03-01T00:00:00Z",
            "expires": "2026-06-01T00:00:00Z", "min_agent_version": "0.1.0", "images": [],
            "ostree": {
                "commit": COMMIT, "ref": "gw/x86_64/stable", "osname": "gw", "repo": "repo",
                "kernel_path": "/usr/lib/modules/6.1.0/vmlinuz",
                "kernel": {"size": 10, "sha256": sha, "signatures": []},
                "initrd_path": "/usr/lib/modules/6.1.0/initramfs.img",
                "initrd": {"size": 5, "sha256": sha},
                "static_delta": {"file": "ostree.delta", "size": 3, "sha256": sha}
            }
        });
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    fn refused(edit: impl FnOnce(&mut serde_json::Value), why: &str) {
        let e = check_structure(&manifest(edit)).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }

    #[test]
    fn an_ostree_release_is_checked_for_what_becomes_a_path_or_a_url() {
        check_structure(&manifest(|_| {})).unwrap();
        check_structure(&manifest(|v| v["ostree"]["repo"] = "../repo".into())).unwrap();
        refused(
            |v| v["ostree"]["commit"] = "ABC".into(),
            "not an OSTree checksum",
        );
        refused(
            |v| v["ostree"]["commit"] = COMMIT.to_uppercase().into(),
            "not an OSTree checksum",
        );
        for repo in ["/srv/repo", "https://cdn/repo", "repo?x=1", "", "re po"] {
            refused(|v| v["ostree"]["repo"] = repo.into(), "not a URL relative");
        }
        for p in [
            "usr/vmlinuz",
            "/usr/../etc/shadow",
            "/usr//vmlinuz",
            "/usr/./v",
        ] {
            refused(
                |v| v["ostree"]["kernel_path"] = p.into(),
                "not an absolute path",
            );
        }
        refused(|v| v["ostree"]["osname"] = "../gw".into(), "ostree.osname");
        refused(
            |v| v["ostree"]["initrd"] = serde_json::Value::Null,
            "come together",
        );
        refused(
            |v| v["ostree"]["static_delta"]["file"] = "../x".into(),
            "ostree.static_delta.file",
        );
        refused(
            |v| v["ostree"]["static_delta"]["from"] = COMMIT.into(),
            "of another commit",
        );
        refused(
            |v| v["ostree"]["kernel"]["size"] = (limits::MAX_BOOT_FILE + 1).into(),
            "over the",
        );
        refused(|v| v["cmdline"] = "updater.slot=A".into(), "updater.slot");
    }

    #[test]
    fn an_ostree_release_carries_nothing_else_to_install() {
        let sha = "ab".repeat(32);
        refused(
            |v| v["kernel"] = serde_json::json!({"size": 10, "sha256": sha, "signatures": []}),
            "it has no images, kernel, initrd or uki sections",
        );
        let e = check_structure(&manifest(|v| {
            v["ostree"] = serde_json::Value::Null;
        }))
        .unwrap_err()
        .to_string();
        assert!(e.contains("the release has no images"), "{e}");
    }
}
