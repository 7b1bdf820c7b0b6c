//! The JSON that scripts read is pinned: `status --json`, `apply --json`,
//! `check --json` and `health --json` keep their keys and the types of their
//! values. Each document is reduced to its shape (every leaf replaced by its
//! type name, an array by the shape of its first element) and compared with
//! the shape kept in `tests/cli/json/`, taken from the agent before the flow
//! layer existed. `UPDATER_BLESS=1` writes them anew (only for a deliberate,
//! documented change).

use serde_json::{json, Value};

use crate::device::{Boot, Builder, Device};

/// The shape of a JSON value.
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

/// Compare `v`'s shape with the kept one named `name`.
fn pinned(name: &str, v: &Value) {
    let path = format!("{}/tests/cli/json/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let got = shape(v);
    if std::env::var_os("UPDATER_BLESS").is_some() {
        let mut text = serde_json::to_string_pretty(&got).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap();
    assert_eq!(got, want, "{name}: the JSON's keys or types changed: {v}");
}

/// `updater ARGS --json`, one document.
fn doc(d: &Device, args: &[&str]) -> Value {
    let r = d.run(args);
    assert!(matches!(r.code, 0 | 7), "{args:?}: {}", r.stderr);
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout))
}

/// `apply --json`'s lines as one document: the events in order, each with
/// its shape (progress lines come at most twice a second, so how many there
/// are is left out).
fn lines(d: &Device, args: &[&str]) -> Value {
    let r = d.run(args);
    r.assert_ok();
    Value::Array(
        r.stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .filter(|v| v["event"] != "progress")
            .map(|v| json!([v["event"], shape(&v)]))
            .collect(),
    )
}

/// Compare a list of events (as [`lines`] gives them) with the kept one.
fn pinned_lines(name: &str, v: &Value) {
    let path = format!("{}/tests/cli/json/{name}.json", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATER_BLESS").is_some() {
        let mut text = serde_json::to_string_pretty(v).unwrap();
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v, &want, "{name}: the JSON lines changed");
}

#[test]
fn status_apply_check_and_health_json_keep_their_keys() {
    let d = Builder::new()
        .boot(Boot::Grub)
        .fixed_clock()
        .trials()
        .channel()
        .build();
    pinned("status-fresh", &doc(&d, &["status", "--json"]));
    pinned("check", &doc(&d, &["check", "--json"]));
    pinned_lines("apply", &lines(&d, &["apply", &d.url(), "--json"]));
    pinned("status-installed", &doc(&d, &["status", "--json"]));
    pinned_lines(
        "apply-reboot",
        &lines(&d, &["apply", &d.url(), "--json", "--reboot"]),
    );
    pinned("status-trial", &doc(&d, &["status", "--json"]));
    d.reset();
    d.check("20-fail", "echo broken >&2; exit 1");
    pinned("health-failed", &doc(&d, &["health", "--json"]));
    pinned("status-failed", &doc(&d, &["status", "--json"]));
    d.reset();
    pinned("health-nothing", &doc(&d, &["health", "--json"]));
}
