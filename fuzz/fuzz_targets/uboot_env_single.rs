//! A single-copy U-Boot environment: parse, change, write back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater::bootenv::uboot::UbootEnv;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut env) = UbootEnv::parse_single(data) {
        let _ = env.set("BOOT_ORDER", "B A");
        if let Ok(bytes) = env.to_single(data.len()) {
            let again = UbootEnv::parse_single(&bytes).expect("our own env parses");
            assert_eq!(again.get("BOOT_ORDER"), env.get("BOOT_ORDER"));
        }
    }
});
