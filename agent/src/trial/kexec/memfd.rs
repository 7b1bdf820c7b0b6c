//! Sealed memory files: the bytes that are verified are the bytes that are
//! handed to the kernel.
//!
//! A file on disk can change between the moment it is hashed and the moment
//! `kexec_file_load` reads it (TOCTOU). Instead the agent copies it into a
//! memfd, seals it against any change (F_SEAL_WRITE | F_SEAL_SHRINK |
//! F_SEAL_GROW, then F_SEAL_SEAL so the seals themselves are final), hashes
//! the sealed copy, and passes that very fd to the kernel.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use sha2::{Digest, Sha256};

use crate::error::Rejected;
use updater_format::Sha256Digest;

/// A sealed, immutable in-memory copy of a file.
#[derive(Debug)]
pub struct SealedMemfd {
    file: File,
    size: u64,
    digest: Sha256Digest,
}

/// A new memfd named `name` that can be sealed.
fn new_memfd(name: &str) -> Result<File> {
    let cname = CString::new(name).context("memfd name")?;
    let fd: OwnedFd = memfd_create(
        &cname,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .context("memfd_create")?;
    Ok(File::from(fd))
}

impl SealedMemfd {
    /// Copy exactly `expected_size` bytes of `path` into a memfd named
    /// `name`, seal it, and hash the sealed bytes. A file of another size is
    /// refused (the signed size is a hard limit).
    pub fn from_file(path: &Path, name: &str, expected_size: u64) -> Result<SealedMemfd> {
        let src = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut file = new_memfd(name)?;
        let copied = std::io::copy(&mut src.take(expected_size + 1), &mut file)
            .with_context(|| format!("copying {} into memory", path.display()))?;
        if copied != expected_size {
            return Err(Rejected::Mismatch {
                what: path.display().to_string(),
                reason: format!(
                    "is {}{copied} bytes, the signed manifest says {expected_size}",
                    if copied > expected_size {
                        "more than "
                    } else {
                        ""
                    }
                ),
            }
            .into());
        }
        file.flush()?;
        Self::seal(file, expected_size)
    }

    /// Copy `bytes` (a section of a sealed image) into a memfd named
    /// `name`, seal it, and hash the sealed bytes.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<SealedMemfd> {
        let mut file = new_memfd(name)?;
        file.write_all(bytes)
            .context("copying a section into memory")?;
        file.flush()?;
        Self::seal(file, bytes.len() as u64)
    }

    /// The sealed bytes (they cannot change: the memfd is sealed).
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.size() as usize);
        let mut f = self.file().try_clone().context("reading a sealed memfd")?;
        f.seek(std::io::SeekFrom::Start(0))?;
        f.read_to_end(&mut out).context("reading a sealed memfd")?;
        Ok(out)
    }

    /// Seal a memfd already holding `size` bytes and hash it.
    pub fn seal(file: File, size: u64) -> Result<SealedMemfd> {
        fcntl(
            file.as_raw_fd(),
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_WRITE
                    | SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_SEAL,
            ),
        )
        .context("sealing the memfd")?;
        // Hash what is in the sealed file now: nothing can change it anymore.
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        while off < size {
            let n = file
                .read_at(&mut buf, off)
                .context("reading the sealed memfd")?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            off += n as u64;
        }
        Ok(SealedMemfd {
            file,
            size: off,
            digest: Sha256Digest::from_hasher(h),
        })
    }

    /// The sha256 of the sealed bytes.
    pub fn digest(&self) -> Sha256Digest {
        self.digest
    }

    /// The size of the sealed bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The fd to hand to the kernel.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The underlying file (for tests: writes must fail).
    pub fn file(&self) -> &File {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_memfd_refuses_every_change() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vmlinuz");
        std::fs::write(&p, b"kernel bytes").unwrap();
        let m = SealedMemfd::from_file(&p, "kernel", 12).unwrap();
        assert_eq!(m.digest(), Sha256Digest::of(b"kernel bytes"));
        // Write, grow, shrink: all refused by the seals.
        assert!(
            m.file().write_at(b"X", 0).is_err(),
            "write to a sealed memfd succeeded"
        );
        assert!(m.file().set_len(100).is_err(), "grow succeeded");
        assert!(m.file().set_len(1).is_err(), "shrink succeeded");
        // The seals cannot be removed or changed (F_SEAL_SEAL).
        assert!(fcntl(
            m.file().as_raw_fd(),
            FcntlArg::F_ADD_SEALS(SealFlag::empty())
        )
        .is_err());
        // Changing the file on disk afterwards changes nothing in memory.
        std::fs::write(&p, b"evil bytes!!").unwrap();
        let mut buf = [0u8; 12];
        m.file().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"kernel bytes");
    }

    #[test]
    fn wrong_size_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vmlinuz");
        std::fs::write(&p, b"kernel bytes and more").unwrap();
        let e = SealedMemfd::from_file(&p, "kernel", 12)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than"), "{e}");
        let e = SealedMemfd::from_file(&p, "kernel", 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("the signed manifest says 100"), "{e}");
    }
}
