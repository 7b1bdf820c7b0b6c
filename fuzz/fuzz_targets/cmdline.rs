//! The kernel command line, as the kernel splits it, and the rules a
//! manifest's command line must follow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(params) = updater_format::cmdline::parse(text) {
            for p in &params {
                assert!(!p.raw.is_empty());
            }
        }
        let _ = updater_format::manifest::verify::check_cmdline(text);
    }
});
