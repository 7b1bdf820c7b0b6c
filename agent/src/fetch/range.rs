//! Reading a server's answer to a range request: `Content-Range` of a 206.
//!
//! A resumed download asks for `Range: bytes=OFFSET-`, a delta for
//! `Range: bytes=START-LAST`, of a file whose exact size the signed manifest
//! gives. The answer is used only if it is the range asked for, of a file of
//! that size; anything else (another start or end, another file's total, a
//! malformed header) is a transient error and the request is made again.

/// A `Content-Range: bytes START-END/TOTAL` (TOTAL `*` when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte sent.
    pub start: u64,
    /// Last byte sent (inclusive).
    pub end: u64,
    /// The file's size, when the server says.
    pub total: Option<u64>,
}

/// Parse a `Content-Range` value (RFC 9110 §14.4), strictly.
pub fn parse_content_range(v: &str) -> Result<ContentRange, String> {
    let bad = || format!("Content-Range {v:?} is not \"bytes START-END/TOTAL\"");
    let rest = v.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let digits = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse::<u64>().map_err(|_| bad())
    };
    let start = digits(a)?;
    let end = digits(b)?;
    let total = match total {
        "*" => None,
        t => Some(digits(t)?),
    };
    if end < start || total.is_some_and(|t| end >= t) {
        return Err(format!(
            "Content-Range {v:?} is not a range inside the file"
        ));
    }
    Ok(ContentRange { start, end, total })
}

/// Check the `Content-Range` of a 206 answer to a request for bytes
/// `offset..end` of a file of `size` bytes: it must be that range, and a
/// total, when given, must be `size`. Returns the range.
pub fn check_partial(
    v: Option<&str>,
    offset: u64,
    end: u64,
    size: u64,
) -> Result<ContentRange, String> {
    let v = v.ok_or("a 206 answer without a Content-Range")?;
    let r = parse_content_range(v)?;
    if r.start != offset || r.end.checked_add(1) != Some(end) {
        return Err(format!(
            "asked for bytes {offset} to {}, got Content-Range {v:?}",
            end.saturating_sub(1)
        ));
    }
    if let Some(t) = r.total.filter(|t| *t != size) {
        return Err(format!(
            "Content-Range {v:?} is of a {t}-byte file, the signed manifest says {size}: another file"
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Ok(ContentRange {
                start: 100,
                end: 199,
                total: Some(1000)
            })
        );
        assert_eq!(parse_content_range("bytes 5-9/*").unwrap().total, None);
        for bad in [
            "bytes 9-5/100",
            "bytes 0-100/100",
            "bytes -5/100",
            "items 0-5/10",
            "bytes 0-5",
            "bytes +1-5/10",
            "bytes 0-99999999999999999999999/*",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
        assert!(check_partial(Some("bytes 100-999/1000"), 100, 1000, 1000).is_ok());
        assert!(check_partial(Some("bytes 100-199/1000"), 100, 200, 1000).is_ok());
        assert!(check_partial(Some("bytes 100-999/2000"), 100, 1000, 1000)
            .unwrap_err()
            .contains("another file"));
        assert!(check_partial(Some("bytes 0-999/1000"), 100, 1000, 1000).is_err());
        // A shorter or longer range than asked is not the answer asked for.
        assert!(check_partial(Some("bytes 100-150/1000"), 100, 200, 1000).is_err());
        assert!(check_partial(Some("bytes 100-999/1000"), 100, 200, 1000).is_err());
        assert!(check_partial(None, 100, 1000, 1000).is_err());
    }
}
