//! `updater-vendor`'s man pages and shell completions in packaging/vendor/
//! are generated from its CLI definition, as the agent's are; this fails
//! when the committed copies drift from it. Regenerate with
//! `UPDATER_BLESS=1 cargo test -p updater-vendor --test cli packaging`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/vendor")
}

#[test]
fn man_pages_and_completions_match_the_cli() {
    let files = updater_testkit::manpages::generated(updater_vendor::Cli::command());
    let drift = updater_testkit::manpages::drift(&packaging(), &files);
    assert!(
        drift.is_empty(),
        "generated files differ from the CLI: {drift:?}; run `UPDATER_BLESS=1 cargo test -p updater-vendor --test cli packaging` and commit"
    );
    let names: Vec<&str> = files.iter().map(|(rel, _)| rel.as_str()).collect();
    for want in [
        "man/updater-vendor.1",
        "man/updater-vendor-release-create.1",
        "man/updater-vendor-channel-publish.1",
        "man/updater-vendor-keyring-init.1",
        "man/updater-vendor-demo.1",
        "completions/updater-vendor.bash",
        "completions/_updater-vendor",
        "completions/updater-vendor.fish",
    ] {
        assert!(names.contains(&want), "{want} is not generated: {names:?}");
    }
    let page = |name: &str| {
        let (_, text) = files
            .iter()
            .find(|(rel, _)| rel == &format!("man/{name}.1"))
            .unwrap();
        String::from_utf8(text.clone()).unwrap()
    };
    for (rel, text) in files.iter().filter(|(rel, _)| rel.starts_with("man/")) {
        let text = String::from_utf8_lossy(text);
        assert!(
            text.contains(".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR\nsuccess"),
            "{rel} has no exit-status list:\n{text}"
        );
    }
    for (name, example) in [
        (
            "updater-vendor-release-create",
            "updater\\-vendor release create \\-\\-out site/gw/1.2.0",
        ),
        (
            "updater-vendor-channel-publish",
            "updater\\-vendor channel publish \\-\\-out site/gw/stable.json",
        ),
    ] {
        let text = page(name);
        let examples = text
            .split_once(".SH EXAMPLES")
            .unwrap_or_else(|| panic!("{name} has no EXAMPLES section"))
            .1;
        assert!(
            examples.contains(example),
            "{name}: no example {example:?} in\n{examples}"
        );
        assert!(
            text.contains(".SH \"EXIT STATUS\""),
            "{name} has no EXIT STATUS"
        );
    }
}
