//! Validation of names that become paths.

/// Longest accepted plain name.
pub const MAX_NAME_LEN: usize = 128;

/// Check that `name` is a plain file name: no directory part, no `..`, no
/// hidden file, only `[A-Za-z0-9._-]`. Names from manifests and keyrings are
/// joined to a directory, so anything else could escape it.
pub fn check_plain_name(name: &str, what: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "it is empty".to_string()
    } else if name.len() > MAX_NAME_LEN {
        format!("it is longer than {MAX_NAME_LEN} bytes")
    } else if name.starts_with('.') {
        "it starts with '.' (hidden files and '..' are refused)".to_string()
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        format!("it contains {c:?}; only letters, digits, '.', '_' and '-' are allowed")
    } else {
        return Ok(());
    };
    Err(format!(
        "{what} {name:?} is not a plain file name inside its folder: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/b",
            "..",
            ".",
            ".hidden",
            "",
            "a b",
            "a\0b",
        ] {
            assert!(check_plain_name(bad, "file").is_err(), "{bad:?} accepted");
        }
        for good in ["rootfs.zst", "kernel-1.pub", "A_b.9"] {
            assert!(check_plain_name(good, "file").is_ok(), "{good:?} refused");
        }
    }
}
