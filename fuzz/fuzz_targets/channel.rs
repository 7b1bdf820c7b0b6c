//! A channel payload: parsing and structure rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_format::channel::{check_structure, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = parse(data) {
        let _ = check_structure(&c);
        for r in &c.releases {
            let _ = r.rollout_buckets();
            let _ = updater_format::channel::bucket("device-0001", &r.version);
        }
    }
});
