//! Slot sinks: where verified image bytes are written. The install pipeline
//! hands a sink only bytes whose chunk hash already matched.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A slot target being written.
pub trait SlotSink: Send {
    /// What is written, for messages.
    fn describe(&self) -> String;
    /// Write `data` at `offset` (`pwrite`).
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;
    /// Read back `buf.len()` bytes at `offset`; false when they are not all
    /// there (a target shorter than a checkpoint said).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<bool>;
    /// Make everything written so far durable (before a checkpoint promises
    /// it).
    fn sync(&mut self) -> Result<()>;
    /// The image is complete at `size` bytes: cut a file target to that size
    /// (a longer older image would leave a stale tail) and sync.
    fn finish(&mut self, size: u64) -> Result<()>;
}

/// A block device or a regular file.
pub struct FileSink {
    file: File,
    path: PathBuf,
    is_block: bool,
}

impl FileSink {
    /// Open `path` for an image of `size` bytes: a file is created if
    /// missing; a block device must exist and hold the image.
    pub fn open(path: &Path, size: u64) -> Result<FileSink> {
        let is_block = std::fs::metadata(path)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(!is_block)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening slot target {}", path.display()))?;
        if is_block {
            let dev_size = file
                .seek(SeekFrom::End(0))
                .with_context(|| format!("reading the size of {}", path.display()))?;
            if dev_size < size {
                return Err(anyhow::Error::new(std::io::Error::other(format!(
                    "slot target {} holds {dev_size} bytes, the image needs {size}",
                    path.display()
                ))));
            }
        }
        Ok(FileSink {
            file,
            path: path.to_path_buf(),
            is_block,
        })
    }
}

impl SlotSink for FileSink {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, offset)
            .with_context(|| format!("writing {} at {offset}", self.path.display()))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<bool> {
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("reading {} at {offset}", self.path.display()))
            }
        }
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        if !self.is_block {
            self.file
                .set_len(size)
                .with_context(|| format!("truncating {}", self.path.display()))?;
        }
        self.file
            .sync_all()
            .with_context(|| format!("syncing {}", self.path.display()))
    }
}

/// The suffix of the file a [`ReplaceSink`] writes before it renames it
/// over the target.
pub const NEW_SUFFIX: &str = ".updater-new";

/// A file target replaced whole: the image is written into `TARGET.updater-new`
/// beside it, synced, and renamed over the target (then the folder synced)
/// only when it is complete. For the kernel and initrd files on an ESP that
/// systemd-boot reads: the target keeps its old, whole content until the new
/// one is whole. A crash leaves the `.updater-new` file, which the next run
/// resumes (each chunk in it is checked before it is kept).
pub struct ReplaceSink {
    inner: FileSink,
    target: PathBuf,
}

impl ReplaceSink {
    /// Open (or resume) the new file of `path`. A new one starts as a copy
    /// of the target, so that the install finds the target's old bytes in
    /// place as it does for a target written in place (what its plan and
    /// its download budget counted on); each chunk is still checked before
    /// it is kept.
    pub fn open(path: &Path, size: u64) -> Result<ReplaceSink> {
        let mut name = path
            .file_name()
            .with_context(|| format!("slot target {} has no file name", path.display()))?
            .to_os_string();
        name.push(NEW_SUFFIX);
        let new = path.with_file_name(name);
        if !new.exists() && path.is_file() {
            std::fs::copy(path, &new)
                .with_context(|| format!("copying {} to {}", path.display(), new.display()))?;
        }
        Ok(ReplaceSink {
            inner: FileSink::open(&new, size)?,
            target: path.to_path_buf(),
        })
    }
}

impl SlotSink for ReplaceSink {
    fn describe(&self) -> String {
        self.target.display().to_string()
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write_at(offset, data)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<bool> {
        self.inner.read_at(offset, buf)
    }

    fn sync(&mut self) -> Result<()> {
        self.inner.sync()
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        self.inner.finish(size)?;
        crate::util::fs::rename_durable(&self.inner.path, &self.target)
    }
}

/// A slot target read, never written: the booted slot as a delta's seed,
/// or the target's own old contents. A trait, so that a backend whose
/// groups are not block devices or files reads them its own way.
pub trait SlotReader: Send + Sync {
    /// What is read, for messages.
    fn describe(&self) -> String;
    /// Its size in bytes.
    fn len(&self) -> u64;
    /// Whether it holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Read `buf.len()` bytes at `offset`; false when they are not all there.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<bool>;
    /// A sequential reader from the start (cutting a seed that has no
    /// index), at most `limit` bytes.
    fn stream(&self, limit: u64) -> Result<Box<dyn std::io::Read + '_>>;
}

/// A block device or a file opened read-only, so that no bug in the install
/// can write it.
pub struct FileReader {
    file: File,
    path: PathBuf,
    len: u64,
}

impl FileReader {
    /// Open `path` read-only (a block device or a file).
    pub fn open(path: &Path) -> Result<FileReader> {
        let mut file =
            File::open(path).with_context(|| format!("opening {} to read", path.display()))?;
        // The size of a block device is where its end is, not st_size.
        let len = file
            .seek(SeekFrom::End(0))
            .with_context(|| format!("reading the size of {}", path.display()))?;
        Ok(FileReader {
            file,
            path: path.to_path_buf(),
            len,
        })
    }
}

impl SlotReader for FileReader {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<bool> {
        match self.file.read_exact_at(buf, offset) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("reading {} at {offset}", self.path.display()))
            }
        }
    }

    fn stream(&self, limit: u64) -> Result<Box<dyn std::io::Read + '_>> {
        use std::io::Read;
        let mut f = self
            .file
            .try_clone()
            .with_context(|| format!("reading {}", self.path.display()))?;
        f.seek(SeekFrom::Start(0))
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(Box::new(f.take(limit)))
    }
}
