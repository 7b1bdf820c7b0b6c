//! The man pages and shell completions in packaging/ are generated from the
//! CLI definition; this fails when the committed copies drift from it.
//! Regenerate with `UPDATER_BLESS=1 cargo test --test cli packaging`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// Every generated file: path under packaging/ and contents.
fn generated() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let cmd = updater::cli::Cli::command();
    let mut page = |name: String, c: clap::Command| {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf).unwrap();
        out.push((format!("man/{name}.1"), buf));
    };
    page("updater".into(), cmd.clone());
    // One page per command, as `man updater-apply`.
    for sub in cmd.get_subcommands() {
        let name = format!("updater-{}", sub.get_name());
        let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
        page(name, sub.clone().name(leaked));
    }
    for (shell, file) in [
        (Shell::Bash, "updater.bash"),
        (Shell::Zsh, "_updater"),
        (Shell::Fish, "updater.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "updater", &mut buf);
        out.push((format!("completions/{file}"), buf));
    }
    out
}

#[test]
fn man_pages_and_completions_match_the_cli() {
    let bless = std::env::var_os("UPDATER_BLESS").is_some();
    let files = generated();
    let mut drift = Vec::new();
    for (rel, want) in &files {
        let path = packaging().join(rel);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, want).unwrap();
        } else if std::fs::read(&path).ok().as_ref() != Some(want) {
            drift.push(rel.clone());
        }
    }
    // No stale pages of removed commands either.
    for entry in std::fs::read_dir(packaging().join("man")).unwrap() {
        let name = format!("man/{}", entry.unwrap().file_name().to_string_lossy());
        if !files.iter().any(|(rel, _)| *rel == name) {
            if bless {
                std::fs::remove_file(packaging().join(&name)).unwrap();
            } else {
                drift.push(format!("{name} (no such command)"));
            }
        }
    }
    assert!(
        drift.is_empty(),
        "generated files differ from the CLI: {drift:?}; run `UPDATER_BLESS=1 cargo test --test cli packaging` and commit"
    );
    // The completions know the new commands.
    let bash = String::from_utf8(
        files
            .iter()
            .find(|f| f.0.ends_with(".bash"))
            .unwrap()
            .1
            .clone(),
    )
    .unwrap();
    for c in ["daemon", "check", "activate", "health"] {
        assert!(bash.contains(c), "bash completion lacks {c}");
    }
    // The device binary carries no vendor commands (they are updater-vendor's).
    for c in ["keygen", "publish", "serve", "demo", "schema"] {
        assert!(
            !bash.contains(c),
            "bash completion of the device binary has {c}"
        );
    }
}
