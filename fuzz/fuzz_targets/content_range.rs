//! A server's Content-Range answer to a resumed download or a delta's
//! closed range.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater::fetch::range::{check_partial, parse_content_range};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = parse_content_range(text) {
            assert!(r.start <= r.end);
            assert!(r.total.is_none_or(|t| r.end < t));
        }
        let _ = check_partial(Some(text), 1000, 5000, 5000);
        if let Ok(r) = check_partial(Some(text), 1000, 2000, 5000) {
            // Accepted only as exactly the range asked for.
            assert!(r.start == 1000 && r.end == 1999);
        }
    }
});
