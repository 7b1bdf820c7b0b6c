//! Content-defined chunking (FastCDC, 2020 variant, normalisation level 1,
//! the original gear table): the same cut points on the vendor's host, which
//! cuts a release, and on the device, which cuts a seed (a factory image
//! without an index) to find chunks it already has. A change in the middle
//! of an image only changes the chunks around it; the cut points after it
//! fall where they fell before.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization};

/// Chunk sizes, in bytes: every chunk but the last is at least `min` and at
/// most `max`; they average about `avg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    /// Smallest chunk (but the last).
    pub min: u32,
    /// Target average, a power of two.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

/// About this many chunks per image: small images get small chunks (a
/// change costs little around it), large images larger ones (the device
/// keeps a table of the chunks it has, in bounded memory). Measured on a
/// 256 MiB tar of /usr (docs/benchmarks.md): zstd -3 per chunk takes 55.8%
/// of the bytes at a 4 KiB average, 54.3% at 8 KiB, 51.8% at 64 KiB (47.7%
/// for the whole stream), and the index costs 40 bytes a chunk; 8 KiB is
/// the smallest average whose index stays under 1% of a compressible image.
pub const TARGET_CHUNKS: u64 = 65_536;
/// The smallest average chosen.
pub const MIN_AVG: u32 = 8 * 1024;
/// The largest average chosen.
pub const MAX_AVG: u32 = 64 * 1024;

impl ChunkParams {
    /// The parameters for an image of `size` bytes: an average of
    /// `size / TARGET_CHUNKS` rounded up to a power of two, between 8 KiB and
    /// 64 KiB; a quarter of it as the minimum, four times as the maximum.
    pub fn for_image(size: u64) -> ChunkParams {
        let want = (size / TARGET_CHUNKS).max(1);
        let avg = (want.next_power_of_two() as u32).clamp(MIN_AVG, MAX_AVG);
        ChunkParams {
            min: avg / 4,
            avg,
            max: avg * 4,
        }
    }

    /// Check parameters read from a signed index: the chunker's own bounds
    /// (it would refuse others), a power-of-two average, and the format's
    /// largest chunk.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.min >= 256
            && self.avg.is_power_of_two()
            && (1024..=1 << 20).contains(&self.avg)
            && self.min <= self.avg
            && self.avg <= self.max
            && self.max <= 16 * 1024 * 1024
            && u64::from(self.max) <= crate::limits::MAX_CHUNK_SIZE;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "chunk sizes min {} / avg {} / max {} are not ones this agent can cut (min at least 256, a power-of-two average from 1 KiB to 1 MiB, max at most 16 MiB, min <= avg <= max)",
                self.min, self.avg, self.max
            ))
        }
    }
}

/// How much of the input is held at once: the chunker looks at most `max`
/// bytes ahead, and reading in larger blocks keeps the syscalls few.
const BUFFER: usize = 4 << 20;

/// Cut everything `reader` yields into chunks, calling `f(offset, bytes)`
/// for each in order. Memory: one buffer of at least 4 MiB (or twice the
/// largest chunk).
pub fn chunk_stream<R: Read, E: From<std::io::Error>>(
    mut reader: R,
    params: ChunkParams,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    params
        .validate()
        .map_err(|e| E::from(std::io::Error::other(e)))?;
    let cap = BUFFER.max(2 * params.max as usize);
    let mut buf = vec![0u8; cap];
    let (mut len, mut offset, mut eof) = (0usize, 0u64, false);
    loop {
        while !eof && len < cap {
            match reader.read(&mut buf[len..]) {
                Ok(0) => eof = true,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if len == 0 {
            return Ok(());
        }
        let cdc = FastCDC::with_level(
            &buf[..len],
            params.min,
            params.avg,
            params.max,
            Normalization::Level1,
        );
        let mut start = 0usize;
        // Cut while a whole maximum chunk lies ahead (or the input ended):
        // a cut near the end of the buffer could move once more bytes come.
        while start < len && (eof || len - start >= params.max as usize) {
            let (_, end) = cdc.cut(start, len - start);
            f(offset, &buf[start..end])?;
            offset += (end - start) as u64;
            start = end;
        }
        buf.copy_within(start..len, 0);
        len -= start;
        if eof && len == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn cuts(data: &[u8], p: ChunkParams) -> Vec<(u64, usize)> {
        let mut v = Vec::new();
        chunk_stream::<_, std::io::Error>(data, p, |o, b| {
            v.push((o, b.len()));
            Ok(())
        })
        .unwrap();
        v
    }

    #[test]
    fn parameters_follow_the_image_size() {
        assert_eq!(ChunkParams::for_image(512 << 20).avg, 8192);
        assert_eq!(ChunkParams::for_image(1 << 30).avg, 16384);
        assert_eq!(ChunkParams::for_image(4 << 30).avg, 65536);
        assert_eq!(ChunkParams::for_image(1 << 40).avg, 65536);
        assert_eq!(ChunkParams::for_image(1000).avg, 8192);
        for s in [0, 1000, 1 << 30, 1 << 40] {
            ChunkParams::for_image(s).validate().unwrap();
        }
        assert!(ChunkParams {
            min: 1,
            avg: 4096,
            max: 16384
        }
        .validate()
        .is_err());
        assert!(ChunkParams {
            min: 1024,
            avg: 5000,
            max: 16384
        }
        .validate()
        .is_err());
    }

    #[test]
    fn chunks_cover_the_input_and_resynchronise_after_a_change() {
        let p = ChunkParams::for_image(0);
        let a = noise(3 << 20, 7);
        let ca = cuts(&a, p);
        assert_eq!(ca.iter().map(|c| c.1).sum::<usize>(), a.len());
        assert!(ca
            .iter()
            .rev()
            .skip(1)
            .all(|c| c.1 >= p.min as usize && c.1 <= p.max as usize));
        // Insert 100 bytes at 1 MiB: the chunks before are the same, and
        // most after are the same chunks at shifted offsets.
        let mut b = a[..1 << 20].to_vec();
        b.extend_from_slice(&[0xAA; 100]);
        b.extend_from_slice(&a[1 << 20..]);
        let cb = cuts(&b, p);
        let before: Vec<_> = ca.iter().filter(|c| c.0 + (c.1 as u64) < 1 << 20).collect();
        assert!(before.iter().all(|c| cb.contains(c)));
        let shifted: std::collections::HashSet<_> =
            cb.iter().map(|c| (c.0.saturating_sub(100), c.1)).collect();
        let after: Vec<_> = ca.iter().filter(|c| c.0 > (1 << 20) + 65536).collect();
        let same = after.iter().filter(|c| shifted.contains(c)).count();
        assert!(same * 100 >= after.len() * 99, "{same} of {}", after.len());
        // Reading in small pieces cuts the same.
        struct Drip<'a>(&'a [u8]);
        impl Read for Drip<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(b.len()).min(777);
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut dripped = Vec::new();
        chunk_stream::<_, std::io::Error>(Drip(&a), p, |o, b| {
            dripped.push((o, b.len()));
            Ok(())
        })
        .unwrap();
        assert_eq!(dripped, ca);
    }
}
