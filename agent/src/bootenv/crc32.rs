//! CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88320, initial value and
//! final XOR 0xFFFFFFFF), the checksum U-Boot and libubootenv put in front of
//! the environment (`crc32(0, data, len)` from zlib in libubootenv, U-Boot's
//! own `crc32()` in `env/common.c`: the same function).

/// Byte-at-a-time lookup table, built at compile time.
const TABLE: [u32; 256] = make_table();

const fn make_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// The CRC-32 of `data`, equal to zlib's `crc32(0, data, len)`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::crc32;

    #[test]
    fn check_values() {
        // The standard check value for CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // zlib.crc32(b"\xff" * 16380), a U-Boot erased-flash data area.
        assert_eq!(crc32(&[0xff; 16380]), 0xA05A_35AA);
    }
}
