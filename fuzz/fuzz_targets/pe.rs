//! The PE section reader a UKI goes through before kexec: any bytes give
//! sections inside the buffer or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sections) = updater_format::pe::sections(data) {
        for s in &sections {
            assert!(s.range.start <= s.range.end && s.range.end <= data.len());
        }
        for name in [".linux", ".initrd", ".cmdline"] {
            let _ = updater_format::pe::section(data, name);
        }
    }
});
