//! A chunk table, against an image entry that pins it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_format::manifest::types::Image;
use updater_format::manifest::verify::check_chunk_table;

fuzz_target!(|data: &[u8]| {
    // The image entry of the test vector's kernel: a table must add up to it.
    let img: Image = serde_json::from_str(
        r#"{"class":"kernel","file":"kernel.img.zst","size":21000,
            "sha256":"0000000000000000000000000000000000000000000000000000000000000000",
            "compression":"zstd-chunked","compressed_size":73,
            "compressed_sha256":"0000000000000000000000000000000000000000000000000000000000000000",
            "chunks":{"file":"kernel.chunks.json","size":100,
            "sha256":"0000000000000000000000000000000000000000000000000000000000000000","count":1}}"#,
    )
    .unwrap();
    let _ = check_chunk_table(data, &img);
});
