//! The verification stages of the pipeline: no byte reaches a slot before
//! its chunk matched the signed chunk table.

use updater_format::error::Rejected;
use updater_format::manifest::types::Chunk;
use updater_format::Sha256Digest;

/// Stage 1 (in the fetch thread): a compressed chunk must be exactly the
/// bytes the table pins.
pub fn check_compressed(file: &str, i: usize, ch: &Chunk, comp: &[u8]) -> Result<(), Rejected> {
    let got = Sha256Digest::of(comp);
    if comp.len() as u64 != ch.csize || got != ch.csha256 {
        return Err(Rejected::Mismatch {
            what: format!("{file} chunk {i}"),
            reason: format!(
                "compressed sha256 is {got}, the signed chunk table says {} (tampered, or from another release)",
                ch.csha256
            ),
        });
    }
    Ok(())
}

/// Stage 2 (in the decompress thread): inflate a compressed chunk into
/// `out`, whose spare capacity is the chunk's declared size and no more — a
/// chunk that inflates to more is an error, not a bigger allocation
/// (decompression bombs) — then check the result like a plain chunk.
pub fn inflate(
    dctx: &mut zstd::bulk::Decompressor<'_>,
    file: &str,
    i: usize,
    ch: &Chunk,
    comp: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Rejected> {
    out.clear();
    // Fallible: a device short of memory refuses the release with a line.
    out.try_reserve_exact(ch.size as usize)
        .map_err(|e| Rejected::Invalid(format!(
            "cannot allocate {} bytes for chunk {i} of {file} ({e}): this device has too little memory for the release's chunk size",
            ch.size
        )))?;
    dctx.decompress_to_buffer(comp, out)
        .map_err(|e| Rejected::Mismatch {
            what: format!("{file} chunk {i}"),
            reason: format!("does not decompress to its declared {} bytes: {e}", ch.size),
        })?;
    check_plain(file, i, ch, out)
}

/// A chunk's uncompressed bytes must be exactly the bytes the table pins.
pub fn check_plain(file: &str, i: usize, ch: &Chunk, data: &[u8]) -> Result<(), Rejected> {
    if data.len() as u64 != ch.size || Sha256Digest::of(data) != ch.sha256 {
        return Err(Rejected::Mismatch {
            what: format!("{file} chunk {i}"),
            reason: "its uncompressed bytes do not match the signed chunk table".into(),
        });
    }
    Ok(())
}
