//! A chunk index (release format schema 2): header and root, then every
//! page against the root, then the totals — what the device does with an
//! index fetched by difference. Nothing may panic or allocate without
//! bound, whatever the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use updater_format::index::{check_totals, parse_page, parse_root, root_len, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        let _ = root_len(data);
        return;
    }
    let Ok(len) = root_len(&data[..HEADER_LEN]) else {
        return;
    };
    let Some(root_bytes) = data.get(..len) else {
        return;
    };
    let Ok(root) = parse_root(root_bytes) else {
        return;
    };
    let (mut size, mut csize) = (0u64, 0u64);
    for (p, (off, plen)) in root.pages.iter().zip(root.page_spans()) {
        let Some(page) = data.get(off as usize..off as usize + plen) else {
            return;
        };
        let Ok(entries) = parse_page(page, p, root.params) else {
            return;
        };
        for e in entries {
            size += u64::from(e.size);
            csize += u64::from(e.csize);
        }
    }
    let _ = check_totals(&root, size, csize);
});
