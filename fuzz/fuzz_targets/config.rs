//! One configuration fragment, checked alone as the agent checks each file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = updater::config::check_fragment(text);
    }
});
