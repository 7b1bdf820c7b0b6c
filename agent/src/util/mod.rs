//! Small helpers shared by every concern.

pub mod boottime;
pub mod failpoint;
pub mod fs;
pub mod heartbeat;
pub mod notify;
pub mod perm;

/// Write to stdout, ignoring a closed pipe: the output of a command is
/// informational, and its work (an install, a commit) must neither stop nor
/// panic because nobody reads it any more (`updater status | head -1`).
pub fn print_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// `println!` that ignores a closed stdout ([`print_out`]).
#[macro_export]
macro_rules! say {
    () => {
        $crate::util::print_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::util::print_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `n` and `word`, plural when `n` is not 1: "1 request", "3 requests".
pub fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A size in bytes: digits, optionally followed by K, M or G (or KiB, MiB,
/// GiB), powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size (bytes, or a number with K, M or G)"))?;
    let mult: u64 = match unit.trim() {
        "" => 1,
        "K" | "k" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?}: the unit must be K, M or G (powers of 1024)"
            ))
        }
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if v == 0 {
        return Err(format!("{s:?}: the limit must be positive"));
    }
    Ok(v)
}
