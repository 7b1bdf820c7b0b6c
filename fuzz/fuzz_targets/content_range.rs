//! A server's Content-Range answer to a resumed download.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater::fetch::range::{check_partial, parse_content_range};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = parse_content_range(text) {
            assert!(r.start <= r.end);
            assert!(r.total.is_none_or(|t| r.end < t));
        }
        let _ = check_partial(Some(text), 1000, 5000);
    }
});
