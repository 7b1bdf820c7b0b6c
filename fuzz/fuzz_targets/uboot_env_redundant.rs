//! A redundant U-Boot environment: the input split in two copies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater::bootenv::uboot::{next_flag, UbootEnv};

fuzz_target!(|data: &[u8]| {
    let half = data.len() / 2;
    let (a, b) = (&data[..half], &data[half..half * 2]);
    if let Ok((mut env, active, flag)) = UbootEnv::parse_redundant(a, b) {
        assert!(active < 2);
        let _ = env.set("BOOT_ORDER", "B A");
        if let Ok(bytes) = env.to_redundant(half, next_flag(flag)) {
            // Writing the inactive copy makes it the active one.
            let (c0, c1) = if active == 0 { (a, &bytes[..]) } else { (&bytes[..], b) };
            let (again, now_active, _) = UbootEnv::parse_redundant(c0, c1).expect("parses");
            assert_eq!(now_active, 1 - active);
            assert_eq!(again.get("BOOT_ORDER"), env.get("BOOT_ORDER"));
        }
    }
});
