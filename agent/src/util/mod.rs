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
