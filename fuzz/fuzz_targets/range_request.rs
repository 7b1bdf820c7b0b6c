//! A client's Range request, as the loopback release server reads it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_release::serve::{parse_range, RangeAsk};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match parse_range(Some(text), 4096) {
            RangeAsk::Part { start, end } => assert!(start < end && end <= 4096),
            RangeAsk::Unsatisfiable { start } => assert!(start >= 4096),
            RangeAsk::Whole => {}
        }
    }
});
