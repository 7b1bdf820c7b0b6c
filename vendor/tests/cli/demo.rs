//! The README's first command: the demo runs to the end on a fresh folder.

use crate::common::*;

#[test]
fn demo_runs_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let r = tool(&["demo", "--dir", dir.path().to_str().unwrap()]);
    r.assert_ok();
    assert!(r.stdout.contains("demo finished"), "{}", r.stdout);
    assert!(r.stdout.contains("refused (exit code 3)"), "{}", r.stdout);
    assert!(dir.path().join("releases/1.0.0/manifest.json").exists());
}
