//! What storage a slot target really is, whatever its name.
//!
//! "Never write the booted slot" cannot be checked on path names: a second
//! name for the same storage defeats it — a hard link, a symlink (by-label,
//! by-uuid), a second device node, a bind mount, a loop device over a slot
//! image, a device-mapper view of the booted partition, or the whole disk
//! that holds it. So each target is identified by what the kernel says it
//! is: device and inode for a file, the device number for a block device,
//! and, from sysfs, what a block device is built on (device-mapper and md
//! `slaves/`, a loop device's `backing_file`) and what it contains (the
//! partitions of a whole disk). Two targets conflict when one's storage
//! covers the other's, or when a file lives on the filesystem of the other
//! block device.

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One piece of storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Storage {
    /// A block device, by its device number.
    Block(u64),
    /// A file, by its filesystem's device and its inode.
    File {
        /// The filesystem's device (`st_dev`).
        dev: u64,
        /// The inode.
        ino: u64,
    },
}

/// A target's identity: the storage it is, everything that storage is built
/// on or contains, and the filesystems its bytes land in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The storage written, and what it is built on or contains.
    pub covers: BTreeSet<Storage>,
    /// The filesystems (by `st_dev`) whose blocks a write changes: a file's
    /// own filesystem, a loop device's backing file's filesystem.
    pub filesystems: BTreeSet<u64>,
}

impl Identity {
    /// Why writing `self` could change `other`, if it could.
    pub fn overlaps(&self, other: &Identity) -> Option<String> {
        if let Some(s) = self.covers.intersection(&other.covers).next() {
            return Some(match s {
                Storage::Block(d) => format!("both are block device {}:{}", major(*d), minor(*d)),
                Storage::File { dev, ino } => format!(
                    "both are inode {ino} of the filesystem on {}:{}",
                    major(*dev),
                    minor(*dev)
                ),
            });
        }
        for (a, b) in [(self, other), (other, self)] {
            for s in &a.covers {
                if let Storage::Block(d) = s {
                    if b.filesystems.contains(d) {
                        return Some(format!(
                            "one is a file on the filesystem of the other, block device {}:{}",
                            major(*d),
                            minor(*d)
                        ));
                    }
                }
            }
        }
        None
    }
}

/// The major number of a Linux `dev_t` (glibc's `gnu_dev_major`).
pub fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// The minor number of a Linux `dev_t` (glibc's `gnu_dev_minor`).
pub fn minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

fn makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | ((major & !0xfff) << 32) | (minor & 0xff) | ((minor & !0xff) << 12)
}

/// Read a sysfs `dev` file ("MAJ:MIN").
fn read_devno(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let (a, b) = text.trim().split_once(':')?;
    Some(makedev(a.parse().ok()?, b.parse().ok()?))
}

/// Identify `path` (following links, as a write to it would). A path that
/// does not exist yet (a file target before the first install) is
/// identified by the filesystem its parent folder is on.
pub fn identify(path: &Path, sys_root: &Path) -> Identity {
    let mut id = Identity::default();
    match std::fs::metadata(path) {
        Ok(md) if md.file_type().is_block_device() => {
            block(md.rdev(), sys_root, &mut id, 0);
        }
        Ok(md) => {
            id.covers.insert(Storage::File {
                dev: md.dev(),
                ino: md.ino(),
            });
            id.filesystems.insert(md.dev());
        }
        Err(_) => {
            if let Some(md) = path.parent().and_then(|p| std::fs::metadata(p).ok()) {
                id.filesystems.insert(md.dev());
            }
        }
    }
    id
}

/// Add block device `dev` and what sysfs says it is built on and contains.
fn block(dev: u64, sys_root: &Path, id: &mut Identity, depth: u32) {
    if !id.covers.insert(Storage::Block(dev)) || depth > 16 {
        return;
    }
    let node: PathBuf = sys_root
        .join("dev/block")
        .join(format!("{}:{}", major(dev), minor(dev)));
    // Built on: the devices under a device-mapper or md device.
    if let Ok(rd) = std::fs::read_dir(node.join("slaves")) {
        for e in rd.flatten() {
            if let Some(d) = read_devno(&e.path().join("dev")) {
                block(d, sys_root, id, depth + 1);
            }
        }
    }
    // Built on: a loop device's backing file.
    if let Ok(f) = std::fs::read_to_string(node.join("loop/backing_file")) {
        let f = f.trim();
        if let Ok(md) = std::fs::metadata(f) {
            id.covers.insert(Storage::File {
                dev: md.dev(),
                ino: md.ino(),
            });
            id.filesystems.insert(md.dev());
        }
    }
    // Contains: the partitions of a whole disk (writing the disk writes
    // them).
    if !node.join("partition").exists() {
        if let Ok(rd) = std::fs::read_dir(&node) {
            for e in rd.flatten() {
                let p = e.path();
                if p.join("partition").exists() {
                    if let Some(d) = read_devno(&p.join("dev")) {
                        id.covers.insert(Storage::Block(d));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip() {
        for (ma, mi) in [(8, 2), (253, 0), (7, 200), (259, 65537)] {
            let d = makedev(ma, mi);
            assert_eq!((major(d), minor(d)), (ma, mi));
        }
    }

    #[test]
    fn links_and_hard_links_are_the_same_storage() {
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("sys");
        let a = d.path().join("A.img");
        std::fs::write(&a, b"slot").unwrap();
        let hard = d.path().join("hard");
        std::fs::hard_link(&a, &hard).unwrap();
        let soft = d.path().join("soft");
        std::os::unix::fs::symlink(&a, &soft).unwrap();
        let b = d.path().join("B.img");
        std::fs::write(&b, b"other").unwrap();
        let ia = identify(&a, &sys);
        assert!(identify(&hard, &sys).overlaps(&ia).is_some());
        assert!(identify(&soft, &sys).overlaps(&ia).is_some());
        assert!(identify(&b, &sys).overlaps(&ia).is_none());
        // A file not created yet is on its folder's filesystem, and is not
        // any existing file.
        assert!(identify(&d.path().join("new"), &sys)
            .overlaps(&ia)
            .is_none());
    }

    #[test]
    fn device_mapper_loop_and_whole_disk_views_overlap_what_they_show() {
        // A fake sysfs: 8:0 is a disk with partitions 8:1 and 8:2; 253:0 is
        // device-mapper over 8:2; 7:0 is a loop device over a slot image.
        let d = tempfile::tempdir().unwrap();
        let sys = d.path().join("sys");
        let img = d.path().join("A.img");
        std::fs::write(&img, b"slot").unwrap();
        let w = |p: &str, text: &str| {
            let p = sys.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("dev/block/8:0/sda1/partition", "1");
        w("dev/block/8:0/sda1/dev", "8:1");
        w("dev/block/8:0/sda2/partition", "2");
        w("dev/block/8:0/sda2/dev", "8:2");
        w("dev/block/8:2/partition", "2");
        w("dev/block/8:1/partition", "1");
        w("dev/block/253:0/slaves/sda2/dev", "8:2");
        w(
            "dev/block/7:0/loop/backing_file",
            &format!("{}\n", img.display()),
        );
        let id = |dev: u64| {
            let mut i = Identity::default();
            block(dev, &sys, &mut i, 0);
            i
        };
        let (disk, p1, p2, dm, lo) = (
            id(makedev(8, 0)),
            id(makedev(8, 1)),
            id(makedev(8, 2)),
            id(makedev(253, 0)),
            id(makedev(7, 0)),
        );
        assert!(p1.overlaps(&p2).is_none(), "two partitions are separate");
        assert!(
            disk.overlaps(&p2).is_some(),
            "the disk holds its partitions"
        );
        assert!(
            dm.overlaps(&p2).is_some(),
            "device-mapper over the partition"
        );
        assert!(dm.overlaps(&p1).is_none());
        assert!(
            lo.overlaps(&identify(&img, &sys)).is_some(),
            "loop over the image"
        );
    }
}
