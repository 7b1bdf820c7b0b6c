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
///
/// The temporary file is locked (`flock`) for as long as this process owns
/// it: a crash leaves it behind unlocked, and [`remove_stale_temps`] tells
/// it from one that a live process is still writing.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}{TMP_INFIX}{}",
        name.to_string_lossy(),
        random_suffix()
    ));
    let mut f = create_exclusive(&tmp, mode).with_context(|| {
        format!(
            "creating {} (a file already there is never written through)",
            tmp.display()
        )
    })?;
    // Best effort: a filesystem without flock only loses the cleanup of
    // this file after a crash.
    let _ = f.try_lock();
    let result = (|| -> Result<()> {
        f.write_all(data)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        // Every durable write is a failpoint: the crash sweep stops the
        // agent before each one in turn (the temporary file is complete, the
        // target not yet replaced).
        crate::failpoint!("durable-write", "write {}", path.display());
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| full_disk_hint(e, path))
}

/// A write that failed because the filesystem is full says so, and what to
/// do, naming the file meant rather than its temporary name.
fn full_disk_hint(e: anyhow::Error, path: &Path) -> anyhow::Error {
    let full = e
        .chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::StorageFull);
    if !full {
        return e;
    }
    // The file meant, not the temporary name the write used; still an I/O
    // error (exit 5).
    std::io::Error::new(
        std::io::ErrorKind::StorageFull,
        format!(
            "no space left for {} (its folder {} is on a full filesystem): free some space there and run the command again; nothing was changed by this write",
            path.display(),
            parent_dir(path).display()
        ),
    )
    .into()
}

/// What every temporary file name has between the target's name and its
/// random suffix: `.NAME.tmp.0123456789abcdef`.
const TMP_INFIX: &str = ".tmp.";

/// Whether `name` is one of [`write_atomic`]'s temporary names (of a target
/// named `target`, when given).
fn is_temp_name(name: &str, target: Option<&str>) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some((base, suffix)) = rest.rsplit_once(TMP_INFIX) else {
        return false;
    };
    !base.is_empty()
        && target.is_none_or(|t| t == base)
        && suffix.len() == 16
        && suffix
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Remove the temporary files [`write_atomic`] left in `dir` when a crash
/// stopped it (only of the target `target`, when given: a folder the agent
/// shares, such as the boot env's), and that no live process owns: a file
/// whose lock can be taken was left by a process that died. Links under a
/// temporary name are removed, never followed. Returns the files and bytes
/// removed. Called under the state lock, at the start of a session.
pub fn remove_stale_temps(dir: &Path, target: Option<&str>) -> (u64, u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let (mut files, mut bytes) = (0, 0);
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_name(name, target) {
            continue;
        }
        let path = e.path();
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let owned_by_nobody = if md.file_type().is_symlink() {
            true
        } else if md.is_file() {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(&path)
                .is_ok_and(|f| f.try_lock().is_ok())
        } else {
            false
        };
        if owned_by_nobody && std::fs::remove_file(&path).is_ok() {
            files += 1;
            bytes += md.len();
            tracing::info!("removed {}, left by an interrupted write", path.display());
        }
    }
    if files > 0 {
        let _ = sync_dir(dir);
    }
    (files, bytes)
}

/// Rename `from` to `to` durably (the directory synced after): both in one
/// folder, so the rename is atomic.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    crate::failpoint!(
        "durable-write",
        "rename {} to {}",
        from.display(),
        to.display()
    );
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    sync_dir(parent_dir(to))
}

/// Remove `path` durably (the directory synced after), when it exists.
pub fn remove_durable(path: &Path) -> Result<()> {
    crate::failpoint!("durable-write", "remove {}", path.display());
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent_dir(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
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
    fn stale_temporary_files_are_removed_and_live_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let dead = d.path().join(".state.json.tmp.0123456789abcdef");
        std::fs::write(&dead, vec![7u8; 4096]).unwrap();
        // One a live process writes: created and locked as write_atomic does.
        let live = d.path().join(".state.json.tmp.fedcba9876543210");
        let owner = create_exclusive(&live, 0o600).unwrap();
        owner.try_lock().unwrap();
        // A link under a temporary name: removed, its target untouched.
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = d.path().join(".boot.env.tmp.00112233445566ff");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // Not the agent's: another name pattern, or another target.
        let other = d.path().join(".state.json.tmp.notours");
        std::fs::write(&other, b"x").unwrap();
        let foreign = d.path().join(".grubenv.new");
        std::fs::write(&foreign, b"x").unwrap();
        assert_eq!(
            remove_stale_temps(d.path(), Some("boot.env")),
            (1, link_len(&victim))
        );
        assert!(!link.exists() && victim.exists());
        let (files, bytes) = remove_stale_temps(d.path(), None);
        assert_eq!((files, bytes), (1, 4096));
        assert!(!dead.exists());
        assert!(live.exists() && other.exists() && foreign.exists());
        drop(owner);
        assert_eq!(remove_stale_temps(d.path(), None).0, 1);
        assert!(!live.exists());
    }

    /// The size lstat reports for a symlink to `target`.
    fn link_len(target: &Path) -> u64 {
        target.as_os_str().len() as u64
    }

    #[test]
    fn a_crash_leaves_an_unlocked_temporary_file_that_the_sweep_finds() {
        // What a crash leaves: the file write_atomic made, no longer locked.
        let d = tempfile::tempdir().unwrap();
        let name = format!(".state.json{TMP_INFIX}{}", random_suffix());
        assert!(is_temp_name(&name, Some("state.json")));
        assert!(!is_temp_name(&name, Some("clock.json")));
        let f = create_exclusive(&d.path().join(&name), 0o644).unwrap();
        f.try_lock().unwrap();
        drop(f);
        assert_eq!(remove_stale_temps(d.path(), None).0, 1);
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
