//! A manifest payload (what a signature covers): parsing and structure
//! rules, then the device policy.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_format::manifest::verify::{check_policy, check_structure, parse_manifest, Policy};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_manifest(data) {
        if check_structure(&m).is_ok() {
            let now = "2026-06-01T00:00:00Z".parse().unwrap();
            let _ = check_policy(&m, &Policy::at(now));
        }
    }
});
