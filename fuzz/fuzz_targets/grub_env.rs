//! A GRUB environment block: parse, change, write back at its size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater::bootenv::grub::GrubEnv;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut env) = GrubEnv::parse(data) {
        let size = env.block_size();
        let _ = env.set("ORDER", "B A");
        if let Ok(bytes) = env.to_bytes(size) {
            // What we write, we read back the same.
            let again = GrubEnv::parse(&bytes).expect("our own block parses");
            assert_eq!(again.get("ORDER"), env.get("ORDER"));
        }
    }
});
