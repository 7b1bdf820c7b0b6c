//! A keyring index (keyring.toml) and the public keys it names (SPKI PEM).
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_format::keys::{parse_public_key, KeyringIndex};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = toml::from_str::<KeyringIndex>(text);
        let _ = parse_public_key(text, std::path::Path::new("fuzz.pub"));
    }
});
