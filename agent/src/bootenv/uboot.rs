//! The U-Boot environment, as U-Boot stores it and as `fw_printenv` /
//! `fw_setenv` (libubootenv, or U-Boot's own `tools/env`) read and write it.
//!
//! One copy of `size` bytes (the size column of `fw_env.config`, header
//! included):
//!
//! ```text
//! single:     crc32:u32le | data[size - 4]
//! redundant:  crc32:u32le | flag:u8 | data[size - 5]
//! data:       name=value\0 name=value\0 ... \0 <padding>
//! ```
//!
//! - The CRC is zlib's CRC-32 of the *whole* data area, padding included
//!   (libubootenv `libuboot_load`/`libuboot_env_store`; U-Boot
//!   `env_import`). Stored little-endian (as a `uint32_t` on the
//!   little-endian machines this agent targets; both tools just cast).
//! - The list ends at the first empty entry, i.e. the `\0\0`. What follows is
//!   padding that nothing reads. U-Boot's `saveenv` fills it with `0x00`
//!   (`hexport_r` memsets its buffer, lib/hashtable.c); `mkenvimage` uses
//!   `0xff` by default; libubootenv 0.3.2 leaves whatever its `malloc`
//!   returned (observed: stale bytes of the copy it read). So we accept any
//!   padding and write `0x00`, like U-Boot itself.
//! - Values are stored raw: libubootenv neither escapes nor unescapes. (U-Boot's
//!   own `himport_r` drops a `\` before the next byte when importing, so a
//!   value with a backslash written by `fw_setenv` reads differently inside
//!   U-Boot; we mirror libubootenv and leave such values alone.)
//! - An entry `name=` (empty value) means "deleted" to U-Boot (`himport_r`
//!   and `env_set`), while libubootenv loads it as an empty string. We keep
//!   it when reading, so a rewrite preserves it, but [`UbootEnv::set`]
//!   refuses an empty value: use [`UbootEnv::unset`].
//! - Duplicate names: both U-Boot (`hsearch_r` ENTER) and libubootenv
//!   (`__libuboot_set_env`) let the later entry replace the earlier; the
//!   rewrite holds the name once.
//! - Order: U-Boot's export sorts by name (`hexport_r` qsort); libubootenv
//!   inserts every name before the first larger one (`strcmp`), so its list
//!   is sorted too. We keep the order we read and insert a new name where
//!   libubootenv would, so for a sorted environment our rewrite has the same
//!   entries, in the same order, as `fw_setenv`'s.
//!
//! Redundant copies and their flag (the "incremental" scheme that
//! libubootenv uses for files, block devices, NAND and UBI, and U-Boot's
//! `env_check_redund`): a copy is valid when its CRC matches. With one
//! valid copy, that one is active. With two, the higher flag wins, except
//! that 0 beats 255 (the counter wrapped) and on a tie copy 0 wins. A writer
//! writes the *inactive* copy with the active flag plus one (wrapping), so
//! the old copy survives a power cut mid-write: see [`next_flag`]. The NOR
//! "boolean" scheme (active 1 / obsolete 0, rewritten in place) is not
//! supported.

use super::crc32::crc32;
use super::EnvError;

/// Header bytes in front of a single copy's data: the CRC.
pub const SINGLE_HEADER: usize = 4;

/// Header bytes in front of each redundant copy's data: CRC and flag.
pub const REDUNDANT_HEADER: usize = 5;

/// The flag to write into the inactive copy when updating a redundant
/// environment whose active copy has `active_flag` (libubootenv
/// `libuboot_env_store`: `flags++` on a `unsigned char`, so 255 wraps to 0).
pub fn next_flag(active_flag: u8) -> u8 {
    active_flag.wrapping_add(1)
}

/// A parsed U-Boot environment: the variables, in stored order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UbootEnv {
    vars: Vec<(String, String)>,
}

impl UbootEnv {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse a single-copy environment of `bytes.len()` bytes (CRC + data).
    pub fn parse_single(bytes: &[u8]) -> Result<UbootEnv, EnvError> {
        let data = checked_data(bytes, SINGLE_HEADER)?;
        parse_data(data)
    }

    /// Parse a redundant pair. Returns the environment of the active copy,
    /// that copy's index (0 or 1) and its flag. One copy with a bad CRC is
    /// tolerated (that is what the second copy is for); both bad is
    /// [`EnvError::BothCopiesBad`]. To update, write
    /// `to_redundant(size, next_flag(flag))` to copy `1 - index`.
    pub fn parse_redundant(copy0: &[u8], copy1: &[u8]) -> Result<(UbootEnv, usize, u8), EnvError> {
        if copy0.len() != copy1.len() {
            return Err(EnvError::SizeMismatch {
                copy0: copy0.len(),
                copy1: copy1.len(),
            });
        }
        let checked = [
            checked_data(copy0, REDUNDANT_HEADER),
            checked_data(copy1, REDUNDANT_HEADER),
        ];
        let flags = [copy0.get(4).copied(), copy1.get(4).copied()];
        let active = match (&checked[0], &checked[1]) {
            (Err(e0), Err(e1)) => {
                return Err(EnvError::BothCopiesBad {
                    copy0: Box::new(e0.clone()),
                    copy1: Box::new(e1.clone()),
                })
            }
            (Ok(_), Err(_)) => 0,
            (Err(_), Ok(_)) => 1,
            (Ok(_), Ok(_)) => {
                // Both valid: compare flags exactly as libubootenv's
                // libuboot_load (FLAGS_INCREMENTAL) and U-Boot's
                // env_check_redund do.
                let (f0, f1) = (copy0[4], copy1[4]);
                if f0 == 0xff && f1 == 0 {
                    1
                } else if f1 == 0xff && f0 == 0 {
                    0
                } else if f1 > f0 {
                    1
                } else {
                    0
                }
            }
        };
        // Like both tools, a copy is chosen on CRC and flag alone; if its
        // content is then malformed that is an error, not a reason to fall
        // back to the other copy (the bootloader would not either).
        let data = checked[active].as_ref().map_err(Clone::clone)?;
        let flag = flags[active].expect("a valid copy has a flag byte");
        Ok((parse_data(data)?, active, flag))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The variables in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Set `key` to `value`: in place if it exists, else inserted before the
    /// first name that sorts after it (where libubootenv inserts it).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), EnvError> {
        validate_key(key)?;
        let invalid = |reason| EnvError::InvalidValue {
            key: key.to_string(),
            reason,
        };
        if value.contains('\0') {
            return Err(invalid("contains a NUL byte (the entry separator)"));
        }
        if value.is_empty() {
            return Err(invalid(
                "is empty, which U-Boot reads as 'deleted'; use unset instead",
            ));
        }
        if let Some((_, v)) = self.vars.iter_mut().find(|(k, _)| k == key) {
            *v = value.to_string();
            return Ok(());
        }
        // Rust's `str` order is byte order, the same as strcmp on these
        // NUL-free names.
        let at = self
            .vars
            .iter()
            .position(|(k, _)| k.as_str() > key)
            .unwrap_or(self.vars.len());
        self.vars.insert(at, (key.to_string(), value.to_string()));
        Ok(())
    }

    /// Remove `key`, returning its value.
    pub fn unset(&mut self, key: &str) -> Option<String> {
        let at = self.vars.iter().position(|(k, _)| k == key)?;
        Some(self.vars.remove(at).1)
    }

    /// Bytes of data area the variables need: every `name=value\0` plus the
    /// final `\0`.
    pub fn encoded_len(&self) -> usize {
        1 + self
            .vars
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len() + 1)
            .sum::<usize>()
    }

    /// A single copy of exactly `size` bytes (CRC + data, zero padded).
    pub fn to_single(&self, size: usize) -> Result<Vec<u8>, EnvError> {
        let mut out = vec![0u8; SINGLE_HEADER];
        self.encode_data(size, SINGLE_HEADER, &mut out)?;
        let crc = crc32(&out[SINGLE_HEADER..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// One redundant copy of exactly `size` bytes (CRC + `flag` + data, zero
    /// padded). Pass [`next_flag`] of the active copy's flag and write it
    /// over the inactive copy.
    pub fn to_redundant(&self, size: usize, flag: u8) -> Result<Vec<u8>, EnvError> {
        let mut out = vec![0u8, 0, 0, 0, flag];
        self.encode_data(size, REDUNDANT_HEADER, &mut out)?;
        let crc = crc32(&out[REDUNDANT_HEADER..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    fn encode_data(&self, size: usize, header: usize, out: &mut Vec<u8>) -> Result<(), EnvError> {
        // At least one data byte, for the terminating empty entry.
        if size <= header {
            return Err(EnvError::BadSize {
                format: "U-Boot",
                size,
                min: header + 1,
            });
        }
        let needed = self.encoded_len();
        if needed > size - header {
            return Err(EnvError::DoesNotFit {
                needed,
                available: size - header,
            });
        }
        for (k, v) in &self.vars {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        // The final '\0' and the padding, both zero.
        out.resize(size, 0);
        Ok(())
    }
}

/// The data area of one copy after checking its size and CRC.
fn checked_data(bytes: &[u8], header: usize) -> Result<&[u8], EnvError> {
    if bytes.len() <= header {
        return Err(EnvError::BadSize {
            format: "U-Boot",
            size: bytes.len(),
            min: header + 1,
        });
    }
    let stored = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let data = &bytes[header..];
    let computed = crc32(data);
    if stored != computed {
        return Err(EnvError::BadCrc { stored, computed });
    }
    Ok(data)
}

/// Parse `name=value\0...\0` up to the first empty entry; ignore the padding.
fn parse_data(data: &[u8]) -> Result<UbootEnv, EnvError> {
    let mut env = UbootEnv::new();
    let mut pos = 0;
    loop {
        match data.get(pos) {
            None => return Err(EnvError::Unterminated { size: data.len() }),
            Some(0) => return Ok(env),
            Some(_) => {}
        }
        // libubootenv fails the load (-EIO) when an entry runs past the data
        // area; so do we.
        let Some(len) = data[pos..].iter().position(|&b| b == 0) else {
            return Err(EnvError::Unterminated { size: data.len() });
        };
        let offset = pos;
        let invalid = |reason: String| EnvError::InvalidEntry { offset, reason };
        let raw = &data[pos..pos + len];
        pos += len + 1;
        let text =
            std::str::from_utf8(raw).map_err(|e| invalid(format!("not valid UTF-8 ({e})")))?;
        // libubootenv skips an entry without '=' and U-Boot deletes the name;
        // neither writes one, so it means damage that the CRC did not catch
        // (or a hand-made image): refuse rather than guess.
        let Some((key, value)) = text.split_once('=') else {
            return Err(invalid(format!("{text:?} has no '='")));
        };
        validate_key(key).map_err(|e| invalid(e.to_string()))?;
        match env.vars.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => env.vars.push((key.to_string(), value.to_string())),
        }
    }
}

/// Names U-Boot reads back as the same name.
fn validate_key(key: &str) -> Result<(), EnvError> {
    let reason = if key.is_empty() {
        // libubootenv refuses it; U-Boot would drop the whole environment.
        "is empty"
    } else if key.contains('=') {
        "contains '=' (the name ends at the first '=')"
    } else if key.contains('\0') {
        "contains a NUL byte (the entry separator)"
    } else if key.starts_with('#') {
        "starts with '#' (U-Boot's himport_r skips it as a comment)"
    } else if key.starts_with([' ', '\t']) {
        "starts with a blank (U-Boot's himport_r strips leading blanks)"
    } else {
        return Ok(());
    };
    Err(EnvError::InvalidKey {
        key: key.to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootenv::testtools::{require, run_ok};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const SIZE: usize = 0x4000;

    fn env_of(pairs: &[(&str, &str)]) -> UbootEnv {
        let mut env = UbootEnv::new();
        for (k, v) in pairs {
            env.set(k, v).unwrap();
        }
        env
    }

    fn pairs(env: &UbootEnv) -> Vec<(String, String)> {
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A copy with the given raw data area, a correct CRC and the header.
    fn raw_copy(data: &[u8], flag: Option<u8>, size: usize) -> Vec<u8> {
        let mut out = vec![0; 4];
        out.extend(flag);
        out.extend_from_slice(data);
        out.resize(size, 0);
        let crc = crc32(&out[4 + usize::from(flag.is_some())..]);
        out[..4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn single_layout_is_crc_then_sorted_entries_then_zeros() {
        let env = env_of(&[("bootcmd", "run a; run b"), ("a", "1")]);
        let bytes = env.to_single(64).unwrap();
        assert_eq!(bytes.len(), 64);
        let data = b"a=1\0bootcmd=run a; run b\0\0";
        assert_eq!(&bytes[4..4 + data.len()], data);
        assert!(bytes[4 + data.len()..].iter().all(|&b| b == 0));
        assert_eq!(bytes[..4], crc32(&bytes[4..]).to_le_bytes());
        assert_eq!(UbootEnv::parse_single(&bytes).unwrap(), env);
    }

    #[test]
    fn empty_env_and_exact_fit() {
        let bytes = UbootEnv::new().to_single(5).unwrap();
        assert_eq!(bytes[4], 0);
        assert_eq!(UbootEnv::parse_single(&bytes).unwrap(), UbootEnv::new());
        let env = env_of(&[("k", "v")]);
        assert_eq!(env.encoded_len(), 5);
        let exact = env.to_single(4 + 5).unwrap();
        assert_eq!(&exact[4..], b"k=v\0\0");
        assert_eq!(UbootEnv::parse_single(&exact).unwrap(), env);
        let red = env.to_redundant(5 + 5, 9).unwrap();
        assert_eq!(&red[4..], b"\x09k=v\0\0");
        assert_eq!(
            env.to_single(8),
            Err(EnvError::DoesNotFit {
                needed: 5,
                available: 4
            })
        );
        assert!(matches!(env.to_single(4), Err(EnvError::BadSize { .. })));
        assert!(matches!(
            env.to_redundant(5, 0),
            Err(EnvError::BadSize { .. })
        ));
    }

    #[test]
    fn order_is_kept_and_new_names_go_where_libubootenv_puts_them() {
        // Unsorted on disk (hand-made): kept as read.
        let mut env = UbootEnv::parse_single(&raw_copy(b"z=1\0b=2\0\0", None, 64)).unwrap();
        env.set("c", "3").unwrap(); // before "z", the first name > "c"
        env.set("zz", "4").unwrap(); // nothing sorts after it: at the end
        env.set("b", "5").unwrap(); // in place
        let keys: Vec<_> = env.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["c", "z", "b", "zz"]);
        assert_eq!(env.unset("z"), Some("1".into()));
        assert_eq!(env.unset("z"), None);
        assert_eq!(env.get("b"), Some("5"));
    }

    #[test]
    fn padding_is_ignored_and_duplicates_last_wins() {
        let mut data = b"a=1\0b=2\0a=3\0\0".to_vec();
        data.resize(100, 0xff);
        data.extend_from_slice(b"stale=garbage\0");
        let env = UbootEnv::parse_single(&raw_copy(&data, None, 256)).unwrap();
        assert_eq!(
            pairs(&env),
            [("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        // Empty values are kept as libubootenv keeps them.
        let env = UbootEnv::parse_single(&raw_copy(b"e=\0\0", None, 16)).unwrap();
        assert_eq!(env.get("e"), Some(""));
        assert_eq!(&env.to_single(16).unwrap()[4..8], b"e=\0\0");
    }

    #[test]
    fn corrupt_single_inputs_are_refused() {
        let good = env_of(&[("a", "1")]).to_single(64).unwrap();
        let mut bad = good.clone();
        bad[10] ^= 0x01;
        assert!(matches!(
            UbootEnv::parse_single(&bad),
            Err(EnvError::BadCrc { .. })
        ));
        let mut bad = good.clone();
        bad[0] ^= 0x80;
        assert!(matches!(
            UbootEnv::parse_single(&bad),
            Err(EnvError::BadCrc { .. })
        ));
        // Truncated: the CRC covers the full size, so a short read fails.
        assert!(matches!(
            UbootEnv::parse_single(&good[..32]),
            Err(EnvError::BadCrc { .. })
        ));
        for short in [&good[..0], &good[..3], &good[..4]] {
            assert!(matches!(
                UbootEnv::parse_single(short),
                Err(EnvError::BadSize { .. })
            ));
        }
        // Erased flash and garbage.
        assert!(matches!(
            UbootEnv::parse_single(&[0xff; SIZE]),
            Err(EnvError::BadCrc { .. })
        ));
        let garbage: Vec<u8> = (0..SIZE).map(|i| (i * 7 + 3) as u8).collect();
        assert!(UbootEnv::parse_single(&garbage).is_err());
        // A good CRC over bad content.
        assert_eq!(
            UbootEnv::parse_single(&raw_copy(b"a=1\0", None, 8)),
            Err(EnvError::Unterminated { size: 4 })
        );
        assert!(matches!(
            UbootEnv::parse_single(&raw_copy(b"novalue\0\0", None, 32)),
            Err(EnvError::InvalidEntry { offset: 0, .. })
        ));
        assert!(matches!(
            UbootEnv::parse_single(&raw_copy(b"a=1\0=x\0\0", None, 32)),
            Err(EnvError::InvalidEntry { offset: 4, .. })
        ));
        assert!(matches!(
            UbootEnv::parse_single(&raw_copy(b"a=\xff\0\0", None, 32)),
            Err(EnvError::InvalidEntry { .. })
        ));
    }

    #[test]
    fn invalid_keys_and_values_are_refused() {
        let mut env = UbootEnv::new();
        for key in ["", "a=b", "a\0b", "#c", " k", "\tk"] {
            assert!(
                matches!(env.set(key, "v"), Err(EnvError::InvalidKey { .. })),
                "{key:?}"
            );
        }
        for value in ["", "a\0b"] {
            assert!(matches!(
                env.set("k", value),
                Err(EnvError::InvalidValue { .. })
            ));
        }
        assert_eq!(env, UbootEnv::new());
    }

    #[test]
    fn value_too_big_is_refused_not_grown() {
        let mut env = env_of(&[("a", "1")]);
        env.set("big", &"x".repeat(SIZE)).unwrap();
        assert!(matches!(
            env.to_single(SIZE),
            Err(EnvError::DoesNotFit { .. })
        ));
        assert!(matches!(
            env.to_redundant(SIZE, 1),
            Err(EnvError::DoesNotFit { .. })
        ));
    }

    #[test]
    fn redundant_selection_follows_flags_with_wraparound() {
        let zero = env_of(&[("which", "zero")]);
        let one = env_of(&[("which", "one")]);
        for (f0, f1, want) in [
            (1, 0, 0),
            (0, 1, 1),
            (255, 0, 1),
            (0, 255, 0),
            (5, 5, 0),
            (254, 255, 1),
            (255, 254, 0),
            (128, 0, 0),
        ] {
            let c0 = zero.to_redundant(64, f0).unwrap();
            let c1 = one.to_redundant(64, f1).unwrap();
            let (env, idx, flag) = UbootEnv::parse_redundant(&c0, &c1).unwrap();
            assert_eq!(idx, want, "flags {f0} {f1}");
            assert_eq!(flag, [f0, f1][want]);
            assert_eq!(env, [&zero, &one][want].clone());
        }
        assert_eq!(next_flag(7), 8);
        assert_eq!(next_flag(255), 0);
    }

    #[test]
    fn redundant_recovers_from_one_bad_copy_and_reports_two() {
        let zero = env_of(&[("which", "zero")]).to_redundant(64, 1).unwrap();
        let one = env_of(&[("which", "one")]).to_redundant(64, 2).unwrap();
        let mut bad_one = one.clone();
        bad_one[40] ^= 0xff;
        let (env, idx, flag) = UbootEnv::parse_redundant(&zero, &bad_one).unwrap();
        assert_eq!((env.get("which"), idx, flag), (Some("zero"), 0, 1));
        let mut bad_zero = zero.clone();
        bad_zero[2] ^= 1;
        let (env, idx, flag) = UbootEnv::parse_redundant(&bad_zero, &one).unwrap();
        assert_eq!((env.get("which"), idx, flag), (Some("one"), 1, 2));
        // A flipped flag byte is outside the CRC: selection changes, data
        // stays valid (as in U-Boot).
        let mut low = one.clone();
        low[4] = 0;
        assert_eq!(UbootEnv::parse_redundant(&zero, &low).unwrap().1, 0);

        let err = UbootEnv::parse_redundant(&bad_zero, &bad_one).unwrap_err();
        assert!(matches!(err, EnvError::BothCopiesBad { .. }));
        assert!(err.to_string().contains("copy 0"), "{err}");
        assert!(matches!(
            UbootEnv::parse_redundant(&[0xff; 64], &[0; 64]),
            Err(EnvError::BothCopiesBad { .. })
        ));
        assert!(matches!(
            UbootEnv::parse_redundant(&zero, &one[..63]),
            Err(EnvError::SizeMismatch { .. })
        ));
        // The chosen copy is valid but malformed: an error, no fallback.
        let broken = raw_copy(b"x=1\0", Some(9), 9);
        let empty = UbootEnv::new().to_redundant(9, 1).unwrap();
        assert_eq!(
            UbootEnv::parse_redundant(&broken, &empty),
            Err(EnvError::Unterminated { size: 4 })
        );
    }

    // ---- interop with the real fw_printenv / fw_setenv (libubootenv-tool) ----

    struct Tools {
        dir: tempfile::TempDir,
        config: PathBuf,
    }

    impl Tools {
        /// A temp dir with an `fw_env.config` whose lines are `(file, offset)`
        /// pairs of `SIZE`-byte copies, and an empty default environment so
        /// that `fw_setenv` can start from nothing.
        fn new(copies: &[(&str, usize)]) -> Tools {
            let dir = tempfile::tempdir().unwrap();
            let mut config = String::new();
            for (name, offset) in copies {
                let path = dir.path().join(name);
                config.push_str(&format!("{} {offset:#x} {SIZE:#x}\n", path.display()));
            }
            let config_path = dir.path().join("fw_env.config");
            std::fs::write(&config_path, config).unwrap();
            std::fs::write(dir.path().join("defenv"), "").unwrap();
            Tools {
                dir,
                config: config_path,
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn printenv(&self) -> Command {
            let mut c = Command::new(require("fw_printenv", "libubootenv-tool"));
            c.arg("-c").arg(&self.config);
            c
        }

        /// `fw_printenv` output as sorted `name=value` lines.
        fn print(&self) -> Vec<String> {
            let out = run_ok(&mut self.printenv());
            let mut lines: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            lines
        }

        fn setenv(&self, key: &str, value: &str) {
            let mut c = Command::new(require("fw_setenv", "libubootenv-tool"));
            c.arg("-c").arg(&self.config);
            c.arg("-f").arg(self.path("defenv"));
            run_ok(c.arg(key).arg(value));
        }
    }

    fn read_at(path: &Path, offset: usize) -> Vec<u8> {
        std::fs::read(path).unwrap()[offset..offset + SIZE].to_vec()
    }

    fn sorted_lines(env: &UbootEnv) -> Vec<String> {
        let mut v: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.sort();
        v
    }

    #[test]
    fn fw_printenv_reads_our_single_copy() {
        let tools = Tools::new(&[("env", 0)]);
        let env = env_of(&[
            ("bootcmd", "run distro_bootcmd; echo 'x=y'"),
            ("boot_slot", "B"),
            ("upgrade_available", "1"),
            ("bootcount", "0"),
        ]);
        std::fs::write(tools.path("env"), env.to_single(SIZE).unwrap()).unwrap();
        assert_eq!(tools.print(), sorted_lines(&env));
    }

    #[test]
    fn we_read_fw_setenv_single_copy_and_write_the_same_entries() {
        let tools = Tools::new(&[("env", 0)]);
        let file = tools.path("env");
        // From erased flash: fw_setenv starts from the (empty) default.
        std::fs::write(&file, vec![0xff; SIZE]).unwrap();
        tools.setenv("boot_slot", "A");
        tools.setenv("bootcount", "3");
        let theirs = std::fs::read(&file).unwrap();
        assert_eq!(theirs.len(), SIZE);
        let mut env = UbootEnv::parse_single(&theirs).unwrap();
        assert_eq!(
            pairs(&env),
            [
                ("boot_slot".into(), "A".into()),
                ("bootcount".into(), "3".into()),
            ]
        );

        // The same change on both sides: identical entries and terminator.
        // (libubootenv 0.3.2 leaves its padding uninitialised, so only the
        // bytes up to the "\0\0" can be compared, and hence not the CRC.)
        tools.setenv("altbootcmd", "run fallback");
        tools.setenv("boot_slot", "B");
        env.set("altbootcmd", "run fallback").unwrap();
        env.set("boot_slot", "B").unwrap();
        let theirs = std::fs::read(&file).unwrap();
        let ours = env.to_single(SIZE).unwrap();
        let used = 4 + env.encoded_len();
        assert_eq!(
            ours[4..used].escape_ascii().to_string(),
            theirs[4..used].escape_ascii().to_string()
        );
        assert_eq!(UbootEnv::parse_single(&theirs).unwrap(), env);

        // And fw_setenv accepts what we wrote as the base for its change.
        std::fs::write(&file, &ours).unwrap();
        tools.setenv("bootcount", "4");
        env.set("bootcount", "4").unwrap();
        assert_eq!(
            UbootEnv::parse_single(&std::fs::read(&file).unwrap()).unwrap(),
            env
        );
    }

    #[test]
    fn fw_printenv_fails_where_we_fail_on_a_bad_single_copy() {
        let tools = Tools::new(&[("env", 0)]);
        let mut bytes = env_of(&[("a", "1")]).to_single(SIZE).unwrap();
        bytes[100] ^= 1; // in the padding: still covered by the CRC
        std::fs::write(tools.path("env"), &bytes).unwrap();
        assert!(matches!(
            UbootEnv::parse_single(&bytes),
            Err(EnvError::BadCrc { .. })
        ));
        let out = tools.printenv().output().unwrap();
        assert!(!out.status.success(), "{out:?}");
    }

    /// Redundant pair in two files, then in one file at two offsets.
    fn redundant_round_trip(tools: &Tools, locations: [(PathBuf, usize); 2]) {
        let read = || {
            let c0 = read_at(&locations[0].0, locations[0].1);
            let c1 = read_at(&locations[1].0, locations[1].1);
            UbootEnv::parse_redundant(&c0, &c1).unwrap()
        };
        let write = |copy: usize, bytes: &[u8]| {
            let (path, offset) = &locations[copy];
            let mut all = std::fs::read(path).unwrap();
            all[*offset..*offset + SIZE].copy_from_slice(bytes);
            std::fs::write(path, all).unwrap();
        };

        // Ours -> fw_printenv: copy 1 has the higher flag, so it is active.
        let old = env_of(&[("boot_slot", "A"), ("which", "zero")]);
        let new = env_of(&[("boot_slot", "B"), ("which", "one")]);
        write(0, &old.to_redundant(SIZE, 1).unwrap());
        write(1, &new.to_redundant(SIZE, 2).unwrap());
        assert_eq!(tools.print(), sorted_lines(&new));
        let (env, idx, flag) = read();
        assert_eq!((env, idx, flag), (new.clone(), 1, 2));

        // fw_setenv -> ours: it writes the inactive copy 0 with flag 3.
        tools.setenv("bootcount", "1");
        let (env, idx, flag) = read();
        assert_eq!((idx, flag), (0, 3));
        let mut expect = new.clone();
        expect.set("bootcount", "1").unwrap();
        assert_eq!(env, expect);
        // Copy 1 was left alone: still the previous environment.
        let c1 = read_at(&locations[1].0, locations[1].1);
        assert_eq!(c1, new.to_redundant(SIZE, 2).unwrap());

        // Corrupt the active copy 0: both fall back to copy 1.
        let mut c0 = read_at(&locations[0].0, locations[0].1);
        c0[REDUNDANT_HEADER] ^= 0x20;
        write(0, &c0);
        assert_eq!(tools.print(), sorted_lines(&new));
        let (env, idx, flag) = read();
        assert_eq!((env, idx, flag), (new.clone(), 1, 2));

        // We update the way libubootenv does: inactive copy, flag + 1; then
        // fw_printenv follows us.
        let mut ours = new.clone();
        ours.set("boot_slot", "A").unwrap();
        write(1 - idx, &ours.to_redundant(SIZE, next_flag(flag)).unwrap());
        assert_eq!(tools.print(), sorted_lines(&ours));
        assert_eq!(read().1, 0);

        // Wraparound: copy 1 at 255, copy 0 at 0 -> copy 0 wins for both.
        let wrapped = env_of(&[("which", "wrapped")]);
        write(1, &new.to_redundant(SIZE, 255).unwrap());
        write(0, &wrapped.to_redundant(SIZE, next_flag(255)).unwrap());
        assert_eq!(tools.print(), ["which=wrapped"]);
        assert_eq!(read(), (wrapped.clone(), 0, 0));
        // ... and fw_setenv continues the count in copy 1 with flag 1.
        tools.setenv("which", "after-wrap");
        let (env, idx, flag) = read();
        assert_eq!((env.get("which"), idx, flag), (Some("after-wrap"), 1, 1));

        // Both copies bad: both refuse.
        let mut c0 = read_at(&locations[0].0, locations[0].1);
        let mut c1 = read_at(&locations[1].0, locations[1].1);
        c0[0] ^= 1;
        c1[0] ^= 1;
        write(0, &c0);
        write(1, &c1);
        assert!(matches!(
            UbootEnv::parse_redundant(&c0, &c1),
            Err(EnvError::BothCopiesBad { .. })
        ));
        let out = tools.printenv().output().unwrap();
        assert!(!out.status.success(), "{out:?}");
    }

    #[test]
    fn redundant_in_two_files_interoperates_with_libubootenv() {
        let tools = Tools::new(&[("env0", 0), ("env1", 0)]);
        std::fs::write(tools.path("env0"), vec![0u8; SIZE]).unwrap();
        std::fs::write(tools.path("env1"), vec![0u8; SIZE]).unwrap();
        redundant_round_trip(&tools, [(tools.path("env0"), 0), (tools.path("env1"), 0)]);
    }

    #[test]
    fn redundant_at_two_offsets_interoperates_with_libubootenv() {
        let tools = Tools::new(&[("env", 0), ("env", SIZE)]);
        std::fs::write(tools.path("env"), vec![0u8; 2 * SIZE]).unwrap();
        redundant_round_trip(&tools, [(tools.path("env"), 0), (tools.path("env"), SIZE)]);
    }
}
