//! The sections of a PE image, as a Unified Kernel Image carries its kernel
//! (`.linux`), initrd (`.initrd`) and command line (`.cmdline`).
//!
//! Mainline Linux cannot `kexec_file_load` a UKI: the loader unpacks the
//! sections it boots, as kexec-tools and `systemctl kexec` do, each of
//! `min(VirtualSize, SizeOfRawData)` bytes (SizeOfRawData is padded to the
//! file alignment, VirtualSize is the section's real length). Only what is
//! needed is read, every offset and size is checked against the buffer, and
//! a malformed image is an error, never a panic (fuzzed: `fuzz/fuzz_targets/pe.rs`).
//!
//! Layout: `MZ` at 0, the PE header's offset at 0x3c; `PE\0\0`, the COFF
//! header (machine u16, section count u16, ..., optional header size u16 at
//! +16 from the COFF start), the optional header, then 40-byte section
//! headers: name (8 bytes, NUL-padded), VirtualSize, VirtualAddress,
//! SizeOfRawData, PointerToRawData, ...

use std::ops::Range;

/// The most sections an image may declare (PE's own limit is 96).
pub const MAX_SECTIONS: usize = 96;

/// One section: its name and where its bytes are in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name, without its NUL padding (`.linux`).
    pub name: String,
    /// Its bytes in the file: `PointerToRawData` and
    /// `min(VirtualSize, SizeOfRawData)` bytes.
    pub range: Range<usize>,
}

/// Why an image is not a PE image this parser accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeError {
    /// No `MZ` / `PE\0\0` signature, or headers past the end.
    #[error("not a PE image: {0}")]
    NotPe(&'static str),
    /// A section header or a section's bytes outside the file.
    #[error("section {name:?} is outside the image ({what})")]
    OutOfBounds {
        /// The section.
        name: String,
        /// What is out of bounds.
        what: &'static str,
    },
    /// More sections than PE allows.
    #[error("the image declares {0} sections, more than {MAX_SECTIONS}")]
    TooManySections(usize),
    /// The same section twice.
    #[error("section {0:?} appears twice")]
    Duplicate(String),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The sections of the PE image `b`, in header order.
pub fn sections(b: &[u8]) -> Result<Vec<Section>, PeError> {
    if b.get(0..2) != Some(b"MZ") {
        return Err(PeError::NotPe("no MZ signature"));
    }
    let pe = u32_at(b, 0x3c).ok_or(PeError::NotPe("truncated DOS header"))? as usize;
    if b.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
        return Err(PeError::NotPe(
            "no PE signature where the DOS header points",
        ));
    }
    let coff = pe + 4;
    let count = u16_at(b, coff + 2).ok_or(PeError::NotPe("truncated COFF header"))? as usize;
    let opt_size = u16_at(b, coff + 16).ok_or(PeError::NotPe("truncated COFF header"))? as usize;
    if count > MAX_SECTIONS {
        return Err(PeError::TooManySections(count));
    }
    let table = coff + 20 + opt_size;
    let mut out: Vec<Section> = Vec::with_capacity(count);
    for i in 0..count {
        let h = table + i * 40;
        let header = b.get(h..h + 40).ok_or(PeError::OutOfBounds {
            name: format!("#{i}"),
            what: "its header",
        })?;
        let raw_name = &header[..8];
        let end = raw_name.iter().position(|&c| c == 0).unwrap_or(8);
        let name = String::from_utf8_lossy(&raw_name[..end]).into_owned();
        let virtual_size = u32_at(header, 8).unwrap_or(0) as usize;
        let raw_size = u32_at(header, 16).unwrap_or(0) as usize;
        let raw_ptr = u32_at(header, 20).unwrap_or(0) as usize;
        // An image linked without VirtualSize (0) is read to its raw size.
        let len = if virtual_size == 0 {
            raw_size
        } else {
            virtual_size.min(raw_size)
        };
        let end =
            raw_ptr
                .checked_add(len)
                .filter(|&e| e <= b.len())
                .ok_or(PeError::OutOfBounds {
                    name: name.clone(),
                    what: "its bytes",
                })?;
        if out.iter().any(|s| s.name == name) {
            return Err(PeError::Duplicate(name));
        }
        out.push(Section {
            name,
            range: raw_ptr..end,
        });
    }
    Ok(out)
}

/// Whether the PE image `b` carries an Authenticode signature: its
/// certificate table (data directory 4 of the optional header) is not
/// empty. What a kernel enforcing kexec signatures checks first: an image
/// without one is refused with ENODATA ("PEFILE: Unsigned PE binary").
pub fn has_authenticode_signature(b: &[u8]) -> Result<bool, PeError> {
    sections(b)?;
    let pe = u32_at(b, 0x3c).ok_or(PeError::NotPe("truncated DOS header"))? as usize;
    let opt = pe + 24;
    let (count_at, dirs) = match u16_at(b, opt) {
        Some(0x20b) => (opt + 108, opt + 112),
        Some(0x10b) => (opt + 92, opt + 96),
        _ => return Err(PeError::NotPe("unknown optional header magic")),
    };
    let count = u32_at(b, count_at).ok_or(PeError::NotPe("truncated optional header"))?;
    if count <= 4 {
        return Ok(false);
    }
    let size = u32_at(b, dirs + 4 * 8 + 4).ok_or(PeError::NotPe("truncated data directories"))?;
    Ok(size > 0)
}

/// The bytes of section `name` of the PE image `b`, if it has one.
pub fn section<'a>(b: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, PeError> {
    Ok(sections(b)?
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| &b[s.range]))
}

/// A minimal PE image with `sections` (name, bytes), each padded to 0x200
/// in the file and with its real length as VirtualSize: what `objcopy
/// --add-section` makes of a stub, enough for tests and the vendor tool's
/// own checks.
pub fn build(sections: &[(&str, &[u8])]) -> Vec<u8> {
    const ALIGN: usize = 0x200;
    let pe = 0x40;
    let opt_size = 0xf0;
    let table = pe + 24 + opt_size;
    let mut data_at = (table + 40 * sections.len()).div_ceil(ALIGN) * ALIGN;
    let mut out = vec![0u8; data_at];
    out[0..2].copy_from_slice(b"MZ");
    out[0x3c..0x40].copy_from_slice(&(pe as u32).to_le_bytes());
    out[pe..pe + 4].copy_from_slice(b"PE\0\0");
    out[pe + 4..pe + 6].copy_from_slice(&0x8664u16.to_le_bytes());
    out[pe + 6..pe + 8].copy_from_slice(&(sections.len() as u16).to_le_bytes());
    out[pe + 20..pe + 22].copy_from_slice(&(opt_size as u16).to_le_bytes());
    out[pe + 24..pe + 26].copy_from_slice(&0x20bu16.to_le_bytes());
    // Sixteen data directories, all empty: no Authenticode signature.
    out[pe + 24 + 108..pe + 24 + 112].copy_from_slice(&16u32.to_le_bytes());
    for (i, (name, bytes)) in sections.iter().enumerate() {
        let h = table + i * 40;
        let n = name.as_bytes();
        out[h..h + n.len().min(8)].copy_from_slice(&n[..n.len().min(8)]);
        let raw = bytes.len().div_ceil(ALIGN) * ALIGN;
        out[h + 8..h + 12].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        out[h + 12..h + 16].copy_from_slice(&(data_at as u32).to_le_bytes());
        out[h + 16..h + 20].copy_from_slice(&(raw as u32).to_le_bytes());
        out[h + 20..h + 24].copy_from_slice(&(data_at as u32).to_le_bytes());
        out.resize(data_at + raw, 0);
        out[data_at..data_at + bytes.len()].copy_from_slice(bytes);
        data_at += raw;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_read_to_their_virtual_size() {
        let img = build(&[
            (".osrel", b"ID=x\n"),
            (".cmdline", b"quiet"),
            (".linux", &[7u8; 1000]),
        ]);
        let s = sections(&img).unwrap();
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            [".osrel", ".cmdline", ".linux"]
        );
        assert_eq!(section(&img, ".cmdline").unwrap(), Some(&b"quiet"[..]));
        assert_eq!(section(&img, ".linux").unwrap().unwrap(), &[7u8; 1000][..]);
        assert_eq!(section(&img, ".initrd").unwrap(), None);
    }

    #[test]
    fn the_certificate_table_says_whether_an_image_is_signed() {
        let mut img = build(&[(".linux", &[1u8; 10])]);
        assert!(!has_authenticode_signature(&img).unwrap());
        // Data directory 4 (the certificate table): an offset and a size.
        let dir4 = 0x40 + 24 + 112 + 4 * 8;
        img[dir4..dir4 + 4].copy_from_slice(&0x400u32.to_le_bytes());
        img[dir4 + 4..dir4 + 8].copy_from_slice(&0x100u32.to_le_bytes());
        assert!(has_authenticode_signature(&img).unwrap());
        assert!(has_authenticode_signature(b"MZ").is_err());
    }

    #[test]
    fn malformed_images_are_errors() {
        assert!(matches!(sections(b"XX"), Err(PeError::NotPe(_))));
        let img = build(&[(".linux", &[1u8; 10])]);
        assert!(matches!(
            sections(&img[..0x100]),
            Err(PeError::OutOfBounds { .. })
        ));
        let mut bad = img.clone();
        bad[0x3c] = 0xff;
        assert!(matches!(sections(&bad), Err(PeError::NotPe(_))));
        let dup = build(&[(".linux", b"a"), (".linux", b"b")]);
        assert_eq!(sections(&dup), Err(PeError::Duplicate(".linux".into())));
        // A section whose bytes run past the end.
        let mut past = img.clone();
        let table = 0x40 + 24 + 0xf0;
        past[table + 20..table + 24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(sections(&past), Err(PeError::OutOfBounds { .. })));
    }
}
