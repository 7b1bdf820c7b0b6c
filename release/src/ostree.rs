//! `release create --ostree-repo`: a release whose content is an OSTree
//! commit of the vendor's build repository, read with the `ostree` command
//! (the build host that made the repository has it; the device side uses
//! libostree). Nothing here trusts the build repository's objects: the
//! export into the release folder is an untrusted pull, which checks every
//! object against its checksum (a local pull with default flags imports a
//! tampered object silently, ../shared/OSTREE-NOTES.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use updater_format::error::usage;
use updater_format::manifest::types::{is_ostree_checksum, BlobInfo, OstreeInfo, StaticDelta};
use updater_format::Sha256Digest;

/// What `release create` is given for an OSTree release.
#[derive(Debug, Clone)]
pub struct OstreeSource {
    /// The vendor build's repository (any mode).
    pub repo: PathBuf,
    /// The ref to release; its commit is what devices deploy.
    pub refname: String,
    /// The OS name (stateroot) on the devices.
    pub osname: String,
    /// Where devices fetch the objects, relative to the manifest. None:
    /// the commit is exported into `OUT/repo` (an archive-mode repository
    /// holding this commit only), and the manifest names `repo`.
    pub url: Option<String>,
    /// The kernel's path in the tree (default: the one
    /// `/usr/lib/modules/KVER/vmlinuz`).
    pub kernel_path: Option<String>,
    /// The initrd's path in the tree (default:
    /// `/usr/lib/modules/KVER/initramfs.img` when it exists).
    pub initrd_path: Option<String>,
    /// A static delta to make beside the manifest: None for none,
    /// `Some(None)` for one from nothing, `Some(Some(C))` for one from
    /// commit C (which the build repository must hold).
    pub static_delta: Option<Option<String>>,
}

/// The file name of the static delta beside the manifest.
pub const DELTA_FILE: &str = "ostree.delta";

/// The commit and its boot files, read from the build repository before
/// anything is written.
pub struct Resolved {
    commit: String,
    kernel_path: String,
    kernel: Vec<u8>,
    initrd: Option<(String, Vec<u8>)>,
    /// The static delta to make: from nothing (`Some(None)`) or from a
    /// commit, resolved from what was given (a ref or a checksum).
    delta: Option<Option<String>>,
}

impl Resolved {
    /// The kernel's bytes (signed as any release's kernel).
    pub fn kernel(&self) -> &[u8] {
        &self.kernel
    }
}

/// Run `ostree --repo=REPO ARGS`: its stdout, or an error that says what
/// failed, with ostree's own message.
fn ostree(repo: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(args)
        .output()
        .map_err(|e| {
            usage(format!(
                "cannot run the ostree command ({e}); an OSTree release is read with it: install it (apt-get install ostree)"
            ))
        })?;
    if !out.status.success() {
        return Err(usage(format!(
            "ostree --repo={} {}: {}",
            repo.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).trim().to_string()
}

/// Resolve the ref to its commit and read the kernel and initrd from the
/// tree (found under `/usr/lib/modules` unless given).
pub fn resolve(src: &OstreeSource) -> Result<Resolved> {
    if !src.repo.join("config").is_file() {
        return Err(usage(format!(
            "--ostree-repo {}: not an OSTree repository (no config file); give the repository your image build committed to",
            src.repo.display()
        )));
    }
    let commit = text(ostree(&src.repo, &["rev-parse", &src.refname])?);
    if !is_ostree_checksum(&commit) {
        return Err(usage(format!(
            "--ref {}: ostree rev-parse gave {commit:?}, not a commit checksum",
            src.refname
        )));
    }
    let kver = || -> Result<String> {
        let listing = text(ostree(&src.repo, &["ls", &commit, "/usr/lib/modules"])?);
        let dirs: Vec<&str> = listing
            .lines()
            .filter(|l| l.starts_with('d'))
            .filter_map(|l| l.rsplit('/').next())
            .filter(|n| *n != "modules")
            .collect();
        match dirs.as_slice() {
            [one] => Ok(one.to_string()),
            _ => Err(usage(format!(
                "commit {commit} has {} kernel folders in /usr/lib/modules ({}); name the kernel with --ostree-kernel PATH",
                dirs.len(),
                dirs.join(", ")
            ))),
        }
    };
    let kernel_path = match &src.kernel_path {
        Some(p) => p.clone(),
        None => format!("/usr/lib/modules/{}/vmlinuz", kver()?),
    };
    let kernel = ostree(&src.repo, &["cat", &commit, &kernel_path]).map_err(|e| {
        usage(format!(
            "reading the kernel {kernel_path} from commit {commit}: {e:#}"
        ))
    })?;
    if kernel.is_empty() {
        return Err(usage(format!(
            "the kernel {kernel_path} in commit {commit} is empty"
        )));
    }
    let initrd_path = match &src.initrd_path {
        Some(p) => Some(p.clone()),
        None => {
            let dir = kernel_path.rsplit_once('/').map_or("", |(d, _)| d);
            let guess = format!("{dir}/initramfs.img");
            ostree(&src.repo, &["ls", &commit, &guess])
                .ok()
                .map(|_| guess)
        }
    };
    let initrd = match initrd_path {
        Some(p) => {
            let b = ostree(&src.repo, &["cat", &commit, &p]).map_err(|e| {
                usage(format!(
                    "reading the initrd {p} from commit {commit}: {e:#}"
                ))
            })?;
            Some((p, b))
        }
        None => None,
    };
    let delta = match &src.static_delta {
        None => None,
        Some(None) => Some(None),
        Some(Some(from)) => {
            let c = text(
                ostree(&src.repo, &["rev-parse", from])
                    .map_err(|e| usage(format!("--static-delta-from {from}: {e:#}")))?,
            );
            if c == commit {
                return Err(usage(format!(
                    "--static-delta-from {from} is the released commit itself; give the commit devices run now"
                )));
            }
            Some(Some(c))
        }
    };
    Ok(Resolved {
        commit,
        kernel_path,
        kernel,
        initrd,
        delta,
    })
}

/// Write what devices fetch into the release folder `out` (the exported
/// repository, unless the release names another; the static delta) and
/// return the manifest's entry, with the kernel's signed entry given.
pub fn write(
    src: &OstreeSource,
    r: Resolved,
    kernel: updater_format::manifest::types::KernelInfo,
    out: &Path,
) -> Result<OstreeInfo> {
    let url = match &src.url {
        Some(u) => u.clone(),
        None => {
            let dest = out.join("repo");
            ostree(&dest, &["init", "--mode=archive"])?;
            // Untrusted: every object is checked against its checksum on
            // the way in, so a corrupted build repository fails here.
            let from = src.repo.to_string_lossy().into_owned();
            ostree(&dest, &["pull-local", "--untrusted", &from, &r.commit])
                .context("exporting the commit into the release folder")?;
            ostree(
                &dest,
                &["refs", &format!("--create={}", src.refname), &r.commit],
            )?;
            "repo".to_string()
        }
    };
    let static_delta = match &r.delta {
        None => None,
        Some(from) => {
            let file = out.join(DELTA_FILE);
            let mut args = vec![
                "static-delta".to_string(),
                "generate".into(),
                "--min-fallback-size=0".into(),
                format!("--filename={}", file.display()),
                format!("--to={}", r.commit),
            ];
            match from {
                Some(f) => args.push(format!("--from={f}")),
                None => args.push("--empty".into()),
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ostree(&src.repo, &args).context("making the static delta")?;
            let bytes = std::fs::read(&file)
                .with_context(|| format!("reading the static delta {}", file.display()))?;
            Some(StaticDelta {
                file: DELTA_FILE.into(),
                size: bytes.len() as u64,
                sha256: Sha256Digest::of(&bytes),
                from: from.clone(),
            })
        }
    };
    let (initrd_path, initrd) = match r.initrd {
        Some((p, b)) => (
            Some(p),
            Some(BlobInfo {
                size: b.len() as u64,
                sha256: Sha256Digest::of(&b),
            }),
        ),
        None => (None, None),
    };
    Ok(OstreeInfo {
        commit: r.commit,
        refname: src.refname.clone(),
        osname: src.osname.clone(),
        repo: url,
        kernel_path: r.kernel_path,
        kernel,
        initrd_path,
        initrd,
        static_delta,
    })
}
