//! The GRUB environment block (`grubenv`).
//!
//! Layout, as GRUB's `grub-core/lib/envblk.c` reads and writes it and
//! `util/editenv.c` creates it:
//!
//! ```text
//! # GRUB Environment Block\n      signature (GRUB_ENVBLK_SIGNATURE, 25 bytes)
//! name=value\n                    one line per variable, in file order
//! ...
//! ######...#                      '#' up to the block size (free space)
//! ```
//!
//! - The block size is the file size. `grub-editenv create` makes 1024 bytes
//!   (`DEFAULT_ENVBLK_SIZE`), but nothing requires 1024 or a multiple of 512:
//!   `grub_envblk_open` only needs more bytes than the signature, and GRUB's
//!   `save_env` writes the file's own blocklists in place. Neither GRUB nor
//!   `grub-editenv` ever changes the size, and neither do we: a value that
//!   does not fit is an error ("environment block too small" in GRUB).
//! - Values escape `\` and newline with a backslash (`grub_envblk_set`); the
//!   escaped newline is a real 0x0A byte after the backslash, not the letter
//!   `n`. Reading (`grub_envblk_iterate`) turns `\X` into `X` for any `X`,
//!   and line scanning (`find_next_line`) skips the byte after a backslash.
//! - Names are written raw. A line starting with `#` is a comment to GRUB, so
//!   a name starting with `#` would vanish; a `\` in a name would make
//!   `find_next_line` skip the `=` or the newline. We refuse such names.
//! - Duplicate names: `load_env` sets each line in turn, so the last line
//!   wins at boot; `grub-editenv list` prints every line; `grub_envblk_set`
//!   and `grub_envblk_delete` touch only the first. We read last-wins like
//!   GRUB, and [`GrubEnv::set`]/[`GrubEnv::unset`] remove every later
//!   duplicate so the value written is the value GRUB boots with (where
//!   `grub-editenv` would leave a stale duplicate that shadows it).

use super::EnvError;

/// The signature every GRUB environment block starts with.
pub const SIGNATURE: &[u8] = b"# GRUB Environment Block\n";

/// The size `grub-editenv create` gives a new block.
pub const DEFAULT_SIZE: usize = 1024;

/// The smallest block GRUB accepts: `grub_envblk_open` wants
/// `size >= sizeof (GRUB_ENVBLK_SIGNATURE)`, i.e. the signature plus one.
pub const MIN_SIZE: usize = SIGNATURE.len() + 1;

/// One line of the block after the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `name=value`, value unescaped.
    Var { key: String, value: String },
    /// A line starting with `#`, kept verbatim (without its newline) so a
    /// hand-written comment survives a rewrite. `grub-editenv` never writes
    /// them, but GRUB skips them on reading.
    Comment(String),
}

/// A parsed GRUB environment block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrubEnv {
    lines: Vec<Line>,
    size: usize,
}

impl Default for GrubEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl GrubEnv {
    /// An empty environment, as `grub-editenv create` makes, of
    /// [`DEFAULT_SIZE`] bytes.
    pub fn new() -> Self {
        GrubEnv {
            lines: Vec::new(),
            size: DEFAULT_SIZE,
        }
    }

    /// Parse a whole block (the whole `grubenv` file).
    ///
    /// Stricter than GRUB where GRUB would silently misread: a line without
    /// `=` (GRUB would run the name on into the next line), an empty name, a
    /// name GRUB cannot write back, NUL bytes (GRUB's C strings would cut the
    /// value), invalid UTF-8, or a last line without its newline.
    pub fn parse(bytes: &[u8]) -> Result<GrubEnv, EnvError> {
        if bytes.len() < MIN_SIZE {
            return Err(EnvError::BadSize {
                format: "GRUB",
                size: bytes.len(),
                min: MIN_SIZE,
            });
        }
        if !bytes.starts_with(SIGNATURE) {
            return Err(EnvError::BadHeader);
        }
        let mut lines = Vec::new();
        let mut pos = SIGNATURE.len();
        while pos < bytes.len() {
            let end = line_end(bytes, pos);
            if end >= bytes.len() {
                // No newline before the end: this must be the free space,
                // all '#'. grub_envblk_set finds free space the same way
                // (scan back over '#', then require a '\n'), and refuses to
                // write ("Broken") when anything else is there.
                if let Some(i) = bytes[pos..].iter().position(|&b| b != b'#') {
                    return Err(EnvError::NotPadded {
                        offset: pos + i,
                        byte: bytes[pos + i],
                    });
                }
                break;
            }
            lines.push(parse_line(&bytes[pos..end], pos)?);
            pos = end + 1;
        }
        Ok(GrubEnv {
            lines,
            size: bytes.len(),
        })
    }

    /// The size of the block this was parsed from ([`DEFAULT_SIZE`] for
    /// [`GrubEnv::new`]): the size to pass to [`GrubEnv::to_bytes`].
    pub fn block_size(&self) -> usize {
        self.size
    }

    /// The value GRUB's `load_env` would end up with: the last line for
    /// `key` wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().rev().find_map(|l| match l {
            Line::Var { key: k, value } if k == key => Some(value.as_str()),
            _ => None,
        })
    }

    /// The variables in file order, duplicates included (as
    /// `grub-editenv list` prints them).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Var { key, value } => Some((key.as_str(), value.as_str())),
            Line::Comment(_) => None,
        })
    }

    /// Set `key` to `value`: in place if it exists (like `grub_envblk_set`,
    /// which rewrites the first line for the name), else appended after the
    /// last line. Later duplicates of `key` are removed so GRUB boots with
    /// this value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), EnvError> {
        validate_key(key)?;
        if value.contains('\0') {
            // GRUB's values are C strings: a NUL would cut the value short.
            return Err(EnvError::InvalidValue {
                key: key.to_string(),
                reason: "contains a NUL byte",
            });
        }
        let mut first = true;
        self.lines.retain_mut(|l| match l {
            Line::Var { key: k, value: v } if k == key => {
                if first {
                    first = false;
                    *v = value.to_string();
                    true
                } else {
                    false
                }
            }
            _ => true,
        });
        if first {
            self.lines.push(Line::Var {
                key: key.to_string(),
                value: value.to_string(),
            });
        }
        Ok(())
    }

    /// Remove every line for `key` (GRUB's `grub_envblk_delete` removes only
    /// the first, which would let a duplicate come back at boot). Returns the
    /// value GRUB would have seen, if any.
    pub fn unset(&mut self, key: &str) -> Option<String> {
        let old = self.get(key).map(str::to_string);
        self.lines
            .retain(|l| !matches!(l, Line::Var { key: k, .. } if k == key));
        old
    }

    /// Bytes the signature and lines take, before padding.
    pub fn encoded_len(&self) -> usize {
        self.encode_lines().len()
    }

    /// The block, padded with `#` to exactly `size` bytes. Fails with
    /// [`EnvError::DoesNotFit`] rather than grow the block, and with
    /// [`EnvError::BadSize`] below [`MIN_SIZE`]. For a block as
    /// `grub-editenv` writes it, the result after the same `set`/`unset`
    /// is byte-identical to what `grub-editenv` writes.
    pub fn to_bytes(&self, size: usize) -> Result<Vec<u8>, EnvError> {
        if size < MIN_SIZE {
            return Err(EnvError::BadSize {
                format: "GRUB",
                size,
                min: MIN_SIZE,
            });
        }
        let mut out = self.encode_lines();
        if out.len() > size {
            return Err(EnvError::DoesNotFit {
                needed: out.len(),
                available: size,
            });
        }
        out.resize(size, b'#');
        Ok(out)
    }

    fn encode_lines(&self) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        for line in &self.lines {
            match line {
                Line::Var { key, value } => {
                    out.extend_from_slice(key.as_bytes());
                    out.push(b'=');
                    for &b in value.as_bytes() {
                        // grub_envblk_set: escape exactly '\' and '\n'.
                        if b == b'\\' || b == b'\n' {
                            out.push(b'\\');
                        }
                        out.push(b);
                    }
                }
                Line::Comment(text) => out.extend_from_slice(text.as_bytes()),
            }
            out.push(b'\n');
        }
        out
    }
}

/// The index of the newline ending the line that starts at `pos`, or a value
/// `>= bytes.len()` when there is none. Mirrors `find_next_line`: the byte
/// after a backslash never ends a line.
fn line_end(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() {
        match bytes[pos] {
            b'\\' => pos += 2,
            b'\n' => return pos,
            _ => pos += 1,
        }
    }
    pos
}

/// Parse one line (without its newline) that starts at block offset `offset`.
fn parse_line(raw: &[u8], offset: usize) -> Result<Line, EnvError> {
    let invalid = |reason: String| EnvError::InvalidLine { offset, reason };
    if raw.contains(&0) {
        return Err(invalid("contains a NUL byte".into()));
    }
    let text = std::str::from_utf8(raw).map_err(|e| invalid(format!("not valid UTF-8 ({e})")))?;
    if text.starts_with('#') {
        return Ok(Line::Comment(text.to_string()));
    }
    let Some((key, escaped)) = text.split_once('=') else {
        return Err(invalid(format!("{text:?} has no '='")));
    };
    validate_key(key).map_err(|e| invalid(e.to_string()))?;
    // grub_envblk_iterate: "\X" reads as "X" for any X.
    let mut value = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            // line_end skipped the byte after every backslash, so one follows.
            value.extend(chars.next());
        } else {
            value.push(c);
        }
    }
    Ok(Line::Var {
        key: key.to_string(),
        value,
    })
}

/// Names GRUB can write and read back as the same name.
fn validate_key(key: &str) -> Result<(), EnvError> {
    let reason = if key.is_empty() {
        "is empty"
    } else if key.contains('=') {
        "contains '=' (GRUB splits a line at the first '=')"
    } else if key.contains('\n') {
        "contains a newline (names are not escaped)"
    } else if key.contains('\0') {
        "contains a NUL byte"
    } else if key.contains('\\') {
        "contains '\\' (names are not escaped, but GRUB's line scanner treats '\\' as one)"
    } else if key.starts_with('#') {
        "starts with '#' (GRUB would read the line as a comment)"
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
    use std::path::Path;
    use std::process::Command;

    fn editenv() -> Command {
        Command::new(require("grub-editenv", "grub-common"))
    }

    fn list(file: &Path) -> String {
        let out = run_ok(editenv().arg(file).arg("list"));
        String::from_utf8(out.stdout).expect("grub-editenv list prints UTF-8 here")
    }

    fn block(body: &[u8], size: usize) -> Vec<u8> {
        let mut b = SIGNATURE.to_vec();
        b.extend_from_slice(body);
        b.resize(size, b'#');
        b
    }

    #[test]
    fn new_is_what_grub_editenv_create_writes() {
        let bytes = GrubEnv::new().to_bytes(DEFAULT_SIZE).unwrap();
        assert_eq!(bytes.len(), 1024);
        assert!(bytes.starts_with(SIGNATURE));
        assert!(bytes[SIGNATURE.len()..].iter().all(|&b| b == b'#'));
        let env = GrubEnv::parse(&bytes).unwrap();
        assert_eq!(env.iter().count(), 0);
        assert_eq!(env.block_size(), 1024);
    }

    #[test]
    fn round_trip_keeps_order_and_escapes() {
        let mut env = GrubEnv::new();
        env.set("zeta", "1").unwrap();
        env.set("alpha", "a\\b").unwrap();
        env.set("multi", "line1\nline2\\\n").unwrap();
        env.set("empty", "").unwrap();
        env.set("zeta", "2").unwrap(); // in place, not moved
        let bytes = env.to_bytes(1024).unwrap();
        let body = b"zeta=2\nalpha=a\\\\b\nmulti=line1\\\nline2\\\\\\\n\nempty=\n";
        assert_eq!(bytes, block(body, 1024));
        let back = GrubEnv::parse(&bytes).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.get("multi"), Some("line1\nline2\\\n"));
        assert_eq!(back.get("alpha"), Some("a\\b"));
        assert_eq!(back.get("empty"), Some(""));
        let keys: Vec<_> = back.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["zeta", "alpha", "multi", "empty"]);
    }

    #[test]
    fn unset_removes_and_reports() {
        let mut env = GrubEnv::parse(&block(b"a=1\nb=2\nc=3\n", 1024)).unwrap();
        assert_eq!(env.unset("b"), Some("2".into()));
        assert_eq!(env.unset("b"), None);
        assert_eq!(env.to_bytes(1024).unwrap(), block(b"a=1\nc=3\n", 1024));
    }

    #[test]
    fn duplicates_read_last_wins_and_set_collapses_them() {
        let mut env = GrubEnv::parse(&block(b"a=1\nb=x\na=2\n", 1024)).unwrap();
        assert_eq!(env.get("a"), Some("2"));
        assert_eq!(env.iter().count(), 3);
        env.set("a", "3").unwrap();
        assert_eq!(env.to_bytes(1024).unwrap(), block(b"a=3\nb=x\n", 1024));
        let mut env = GrubEnv::parse(&block(b"a=1\na=2\n", 1024)).unwrap();
        assert_eq!(env.unset("a"), Some("2".into()));
        assert_eq!(env.get("a"), None);
    }

    #[test]
    fn comments_and_full_block_are_kept() {
        // A block filled to the last byte has no padding at all: valid.
        let raw = block(b"# hand-written\nk=v\n", SIGNATURE.len() + 19);
        assert_eq!(raw.last(), Some(&b'\n'));
        let env = GrubEnv::parse(&raw).unwrap();
        assert_eq!(env.get("k"), Some("v"));
        assert_eq!(env.to_bytes(raw.len()).unwrap(), raw);
    }

    #[test]
    fn any_size_from_the_minimum_up_is_accepted() {
        let tiny = block(b"", MIN_SIZE);
        assert_eq!(GrubEnv::parse(&tiny).unwrap().block_size(), MIN_SIZE);
        assert!(GrubEnv::parse(&block(b"x=y\n", 700)).is_ok());
        assert!(matches!(
            GrubEnv::new().to_bytes(MIN_SIZE - 1),
            Err(EnvError::BadSize { .. })
        ));
    }

    #[test]
    fn corrupt_inputs_are_refused() {
        assert!(matches!(
            GrubEnv::parse(b""),
            Err(EnvError::BadSize { size: 0, .. })
        ));
        assert!(matches!(
            GrubEnv::parse(SIGNATURE),
            Err(EnvError::BadSize { .. })
        ));
        let mut wrong = block(b"", 1024);
        wrong[2] = b'g';
        assert_eq!(GrubEnv::parse(&wrong), Err(EnvError::BadHeader));
        assert_eq!(GrubEnv::parse(&[0u8; 1024]), Err(EnvError::BadHeader));
        // Truncated: the last line lost its newline and the padding.
        let mut cut = SIGNATURE.to_vec();
        cut.extend_from_slice(b"a=1\nb=2");
        assert!(matches!(
            GrubEnv::parse(&cut),
            Err(EnvError::NotPadded { .. })
        ));
        // Padding that is not '#' (an editor added a newline, or zeros).
        let mut nl = block(b"a=1\n", 1024);
        nl.push(b'\n');
        assert!(GrubEnv::parse(&nl).is_ok(), "a '#...\\n' line is a comment");
        let mut zeros = block(b"a=1\n", 1024);
        zeros[1000..].fill(0);
        assert_eq!(
            GrubEnv::parse(&zeros),
            Err(EnvError::NotPadded {
                offset: 1000,
                byte: 0
            })
        );
        for bad in [
            &b"novalue\n"[..],
            b"=v\n",
            b"\n",
            b"a=x\0y\n",
            b"a=\xff\n",
            b"k\\=v\n",
        ] {
            assert!(
                matches!(
                    GrubEnv::parse(&block(bad, 1024)),
                    Err(EnvError::InvalidLine { .. })
                ),
                "{bad:?}"
            );
        }
        // A trailing backslash escapes past the end of the block.
        let mut esc = block(b"", 1023);
        esc.push(b'\\');
        assert!(matches!(
            GrubEnv::parse(&esc),
            Err(EnvError::NotPadded { .. })
        ));
    }

    #[test]
    fn invalid_keys_and_values_are_refused() {
        let mut env = GrubEnv::new();
        for key in ["", "a=b", "a\nb", "a\0b", "a\\b", "#x"] {
            assert!(
                matches!(env.set(key, "v"), Err(EnvError::InvalidKey { .. })),
                "{key:?}"
            );
        }
        assert!(matches!(
            env.set("k", "a\0b"),
            Err(EnvError::InvalidValue { .. })
        ));
        assert_eq!(env.iter().count(), 0);
    }

    #[test]
    fn value_too_big_is_refused_not_grown() {
        let mut env = GrubEnv::new();
        let room = DEFAULT_SIZE - SIGNATURE.len() - "k=\n".len();
        env.set("k", &"x".repeat(room)).unwrap();
        let full = env.to_bytes(DEFAULT_SIZE).unwrap();
        assert_eq!(full.len(), DEFAULT_SIZE);
        assert_eq!(full.last(), Some(&b'\n'));
        env.set("k", &"x".repeat(room + 1)).unwrap();
        assert_eq!(
            env.to_bytes(DEFAULT_SIZE),
            Err(EnvError::DoesNotFit {
                needed: DEFAULT_SIZE + 1,
                available: DEFAULT_SIZE
            })
        );
        // Escapes count: one '\n' needs two bytes.
        env.set("k", &format!("{}\n", "x".repeat(room - 1)))
            .unwrap();
        assert!(matches!(
            env.to_bytes(DEFAULT_SIZE),
            Err(EnvError::DoesNotFit { .. })
        ));
    }

    // ---- interop with the real grub-editenv (Debian package grub-common) ----

    #[test]
    fn grub_editenv_lists_what_we_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grubenv");
        let mut env = GrubEnv::new();
        env.set("saved_entry", "slot-b").unwrap();
        env.set("boot_once", "true").unwrap();
        env.set("tricky", "back\\slash and\nnew line").unwrap();
        std::fs::write(&file, env.to_bytes(1024).unwrap()).unwrap();
        assert_eq!(
            list(&file),
            "saved_entry=slot-b\nboot_once=true\ntricky=back\\slash and\nnew line\n"
        );
        // A non-default size is fine for GRUB too, and it keeps it.
        let small = dir.path().join("small");
        std::fs::write(&small, env.to_bytes(300).unwrap()).unwrap();
        run_ok(editenv().arg(&small).args(["set", "x=1"]));
        let bytes = std::fs::read(&small).unwrap();
        assert_eq!(bytes.len(), 300);
        env.set("x", "1").unwrap();
        assert_eq!(bytes, env.to_bytes(300).unwrap());
    }

    #[test]
    fn we_read_what_grub_editenv_writes_and_rewrite_identically() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grubenv");
        run_ok(editenv().arg(&file).arg("create"));
        let created = std::fs::read(&file).unwrap();
        assert_eq!(created, GrubEnv::new().to_bytes(DEFAULT_SIZE).unwrap());

        run_ok(
            editenv()
                .arg(&file)
                .args(["set", "a=b", "next_entry=slot-a", "esc=x\\y\nz"]),
        );
        let written = std::fs::read(&file).unwrap();
        let mut env = GrubEnv::parse(&written).unwrap();
        assert_eq!(env.get("a"), Some("b"));
        assert_eq!(env.get("next_entry"), Some("slot-a"));
        assert_eq!(env.get("esc"), Some("x\\y\nz"));
        assert_eq!(env.to_bytes(env.block_size()).unwrap(), written);

        // The same edits on both sides give the same bytes: a change in
        // place that shrinks, one that grows, an append, and a removal.
        run_ok(editenv().arg(&file).args([
            "set",
            "a=much-longer-value",
            "next_entry=b",
            "fresh=1",
        ]));
        run_ok(editenv().arg(&file).args(["unset", "esc"]));
        env.set("a", "much-longer-value").unwrap();
        env.set("next_entry", "b").unwrap();
        env.set("fresh", "1").unwrap();
        env.unset("esc");
        assert_eq!(
            env.to_bytes(env.block_size()).unwrap(),
            std::fs::read(&file).unwrap()
        );
    }

    #[test]
    fn grub_editenv_and_we_agree_on_a_full_block() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grubenv");
        run_ok(editenv().arg(&file).arg("create"));
        let room = DEFAULT_SIZE - SIGNATURE.len() - "k=\n".len();
        let fits = format!("k={}", "x".repeat(room));
        run_ok(editenv().arg(&file).args(["set", &fits]));
        let full = std::fs::read(&file).unwrap();
        assert_eq!(full.len(), DEFAULT_SIZE);
        let mut env = GrubEnv::parse(&full).unwrap();
        assert_eq!(env.to_bytes(DEFAULT_SIZE).unwrap(), full);

        // One byte more: grub-editenv refuses and leaves the file alone;
        // so do we.
        let out = editenv().arg(&file).args(["set", "y=1"]).output().unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("environment block too small"),
            "{out:?}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), full);
        env.set("y", "1").unwrap();
        assert!(matches!(
            env.to_bytes(DEFAULT_SIZE),
            Err(EnvError::DoesNotFit { .. })
        ));
    }

    #[test]
    fn duplicates_as_grub_editenv_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("grubenv");
        std::fs::write(&file, block(b"a=1\nb=x\na=2\n", 1024)).unwrap();
        // grub-editenv lists every line; load_env applies them in order, so
        // "a=2" is what GRUB boots with, and what we read.
        assert_eq!(list(&file), "a=1\nb=x\na=2\n");
        let mut env = GrubEnv::parse(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(env.get("a"), Some("2"));
        // grub-editenv rewrites only the first line, so the stale "a=2"
        // would still win at boot; we drop it.
        run_ok(editenv().arg(&file).args(["set", "a=3"]));
        assert_eq!(list(&file), "a=3\nb=x\na=2\n");
        env.set("a", "3").unwrap();
        std::fs::write(&file, env.to_bytes(1024).unwrap()).unwrap();
        assert_eq!(list(&file), "a=3\nb=x\n");
    }
}
