//! Refusing files and folders that someone else could change.
//!
//! The agent runs as root and trusts its state folder (the anti-rollback
//! floor, the pending trial), its keyring (who may sign releases) and its
//! health checks (run as root). Any of them writable by another user is a
//! way for that user to become root or to install anything: the agent
//! refuses them, naming the file and the fix, unless the configuration says
//! otherwise (`security.allow_insecure_permissions = true`).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Result;

use updater_format::error::usage;

/// Why someone other than the owner (root, or the user the agent runs as)
/// could change the file or folder with these metadata, if they could.
pub fn writable_by_others(md: &std::fs::Metadata) -> Option<String> {
    let mode = md.mode() & 0o7777;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if md.uid() != 0 && md.uid() != me {
        return Some(format!("it is owned by uid {}", md.uid()));
    }
    if mode & 0o002 != 0 {
        return Some(format!("it is writable by every user (mode {mode:04o})"));
    }
    if mode & 0o020 != 0 && md.gid() != 0 {
        return Some(format!(
            "it is writable by group {} (mode {mode:04o})",
            md.gid()
        ));
    }
    None
}

/// Refuse `path` (`what` it is, for the message) when someone else could
/// change it; `allow` is `security.allow_insecure_permissions`.
pub fn check_trusted(path: &Path, what: &str, allow: bool) -> Result<()> {
    let md =
        std::fs::metadata(path).map_err(|e| usage(format!("{what} {}: {e}", path.display())))?;
    if let Some(why) = writable_by_others(&md) {
        if allow {
            tracing::warn!(
                "{what} {} can be changed by others ({why}); used anyway (security.allow_insecure_permissions)",
                path.display()
            );
            return Ok(());
        }
        return Err(usage(format!(
            "{what} {} can be changed by other users: {why}; make it root's alone (chown root:root and chmod go-w {}), or set security.allow_insecure_permissions = true",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// Check a keyring folder and every file in it, then load it.
pub fn load_keyring(dir: &Path, allow: bool) -> Result<updater_format::keys::Keyring> {
    if dir.is_dir() {
        check_trusted(dir, "the keyring folder", allow)?;
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_file() {
                    check_trusted(&p, "the keyring file", allow)?;
                }
            }
        }
    }
    updater_format::keys::Keyring::load(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn world_writable_files_and_folders_are_refused_unless_allowed() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("check");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        check_trusted(&f, "the health check", false).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o757)).unwrap();
        let e = check_trusted(&f, "the health check", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the health check")
                && e.contains("writable by every user")
                && e.contains("chmod go-w"),
            "{e}"
        );
        check_trusted(&f, "the health check", true).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_trusted(d.path(), "the state folder", false).is_err());
    }
}
