//! Failpoints: named places where a test can make the agent die as if the
//! power were cut, to check that every durable step leaves a state the next
//! run recovers from.
//!
//! `UPDATER_FAILPOINTS=name[,name...]` aborts the process when it reaches one
//! of those names; `name@N` aborts at the N-th time it is reached. Only debug
//! builds and builds with the `failpoints` feature look at the variable.

use std::collections::HashMap;
use std::sync::Mutex;

static HITS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Abort here if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if !(cfg!(debug_assertions) || cfg!(feature = "failpoints")) {
        return;
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

/// Mark a failpoint: `failpoint!("state-save")`.
#[macro_export]
macro_rules! failpoint {
    ($name:expr) => {
        $crate::util::failpoint::hit($name)
    };
}
