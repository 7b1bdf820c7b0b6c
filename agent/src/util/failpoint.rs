//! Failpoints: named places where a test can make the agent die as if the
//! power were cut, to check that every durable step leaves a state the next
//! run recovers from.
//!
//! `UPDATER_FAILPOINTS=name[,name...]` aborts the process when it reaches one
//! of those names; `name@N` aborts at the N-th time it is reached.
//! `UPDATER_FAILPOINTS_TRACE=FILE` appends the name of every failpoint
//! reached, one a line: the crash sweep learns from an uninterrupted run
//! where a command's durable writes are, then stops it at each in turn. Only
//! debug builds and builds with the `failpoints` feature look at the
//! variables.

use std::collections::HashMap;
use std::sync::Mutex;

static HITS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Abort here if the failpoint `name` is armed.
pub fn hit(name: &str) {
    hit_at(name, None)
}

/// [`hit`], with what the step is about to do (`write PATH`, `remove
/// PATH`), for the trace.
pub fn hit_at(name: &str, what: Option<std::fmt::Arguments<'_>>) {
    if !(cfg!(debug_assertions) || cfg!(feature = "failpoints")) {
        return;
    }
    if let Some(trace) = std::env::var_os("UPDATER_FAILPOINTS_TRACE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(trace)
        {
            let _ = match what {
                Some(w) => writeln!(f, "{name} {w}"),
                None => writeln!(f, "{name}"),
            };
        }
    }
    let Ok(spec) = std::env::var("UPDATER_FAILPOINTS") else {
        return;
    };
    let mut hits = HITS.lock().unwrap_or_else(|e| e.into_inner());
    let count = {
        let map = hits.get_or_insert_with(HashMap::new);
        let c = map.entry(name.to_string()).or_insert(0);
        *c += 1;
        *c
    };
    for item in spec.split(',') {
        let (n, at) = match item.split_once('@') {
            Some((n, at)) => (n, at.parse::<u64>().unwrap_or(1)),
            None => (item, 1),
        };
        if n == name && count == at {
            eprintln!("failpoint {name} reached: aborting");
            std::process::abort();
        }
    }
}

/// Mark a failpoint: `failpoint!("state-save")`, or with what the next
/// durable step does, for the trace:
/// `failpoint!("durable-write", "write {}", path.display())`.
#[macro_export]
macro_rules! failpoint {
    ($name:expr) => {
        $crate::util::failpoint::hit($name)
    };
    ($name:expr, $($what:tt)+) => {
        $crate::util::failpoint::hit_at($name, Some(format_args!($($what)+)))
    };
}
