//! Durable file writes, and opening files in the state folder safely.
//!
//! The state folder belongs to root, but a folder that someone else can
//! write into (a mistake in an image, a shared data partition) must not let
//! them redirect the agent's writes: a file planted under the name of a
//! temporary file, or a link where the lock file goes. So temporary files
//! get a random name and are created exclusively (`O_EXCL`, which never
//! follows a link), and the lock file is opened with `O_NOFOLLOW`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A random hex suffix for a temporary file name.
fn random_suffix() -> String {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        // No entropy source at all: the exclusive create below still never
        // follows a planted file; the name is just guessable.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ u64::from(std::process::id())).to_le_bytes();
    }
    hex::encode(b)
}

/// Create a new file that did not exist, never through a link.
fn create_exclusive(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Replace `path` with `data` atomically and durably: write a temporary file
/// (random name, created exclusively) in the same directory, fsync it,
/// rename it over the target, fsync the directory. A crash at any point
/// leaves either the old or the new content, never a mix (rename is atomic
/// within a filesystem; the directory fsync makes the rename itself survive
/// power loss).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        random_suffix()
    ));
    let mut f = create_exclusive(&tmp, mode).with_context(|| {
        format!(
            "creating {} (a file already there is never written through)",
            tmp.display()
        )
    })?;
    let result = (|| -> Result<()> {
        f.write_all(data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Open (creating it if missing) a lock file for writing, never through a
/// link: a link planted under its name is refused, not followed.
pub fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// fsync a directory so that entries created or renamed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// The directory holding `path` ("." for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_are_never_written_through_a_planted_link() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("state.json");
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        // An attacker plants links under every name the old scheme used.
        for pid in [std::process::id(), 1, 2] {
            std::os::unix::fs::symlink(&victim, d.path().join(format!(".state.json.tmp.{pid}")))
                .unwrap();
        }
        write_atomic(&target, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // Two writes use two names.
        let a = random_suffix();
        assert_ne!(a, random_suffix());
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn the_lock_file_is_never_opened_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"x").unwrap();
        let lock = d.path().join("lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let e = open_lock(&lock).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    }
}
