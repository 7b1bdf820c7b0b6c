//! The DSSE envelope (manifests and channels arrive in one) and its payload.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_format::envelope::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = serde_json::from_slice::<Envelope>(data) {
        let _ = env.payload_bytes();
        let _ = env.to_json();
    }
});
