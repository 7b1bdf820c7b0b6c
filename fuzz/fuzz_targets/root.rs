//! A root document: as the device reads the one it persisted, and as the
//! next version of a fixed trusted root (signatures, consistency, version).
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_format::root::TrustedRoot;

/// The seed's root version 1 (manifests/vectors/root/1.root.json).
static FACTORY: &[u8] = include_bytes!("../../manifests/vectors/root/1.root.json");

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = TrustedRoot::open_provisioned(data) {
        let _ = r.keyring();
        let _ = r.check_expiry(chrono::DateTime::UNIX_EPOCH);
    }
    static TRUSTED: std::sync::OnceLock<TrustedRoot> = std::sync::OnceLock::new();
    let factory = TRUSTED.get_or_init(|| TrustedRoot::open_provisioned(FACTORY).expect("the seed's root 1 opens"));
    if let Ok(next) = factory.verify_next(data) {
        let _ = factory.dropped(&next, "manifest");
        let _ = next.keyring();
    }
});
