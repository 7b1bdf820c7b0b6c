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
fn the_readme_lists_the_exit_codes_of_the_code() {
    let readme = std::fs::read_to_string(packaging().join("../README.md")).unwrap();
    let table: Vec<(i32, String)> = readme
        .split_once("## Exit codes")
        .expect("README has an exit code table")
        .1
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Some((cells.get(1)?.parse().ok()?, cells.get(2)?.to_string()))
        })
        .collect();
    let code: Vec<(i32, String)> = updater::error::EXIT_CODES
        .iter()
        .map(|(c, m)| (c.code(), m.to_string()))
        .collect();
    assert_eq!(
        table, code,
        "README.md's exit codes differ from agent/src/error.rs"
    );
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

/// Every command a message or a doc comment names in backquotes
/// (`` `updater X Y` ``, `` `updater-vendor X Y` ``) exists: a hint that
/// names a command a user cannot run is worse than none.
#[test]
fn every_hint_names_a_command_that_exists() {
    use clap::Subcommand;
    let device = updater::cli::Cli::command();
    let vendor = updater_release::cli::Command::augment_subcommands(
        clap::Command::new("updater-vendor").subcommand(clap::Command::new("demo")),
    );
    let exists = |tree: &clap::Command, words: &[&str]| -> bool {
        // The first word must be a subcommand; a second one must be its
        // subcommand when it has any (else it is an argument).
        let Some(first) = tree.find_subcommand(words[0]) else {
            return false;
        };
        match words.get(1) {
            Some(w) if first.has_subcommands() => first.find_subcommand(w).is_some(),
            _ => true,
        }
    };
    // The checker itself: the hint round 2 shipped is caught.
    let old = hints("make one with `updater keyring init`");
    assert_eq!(
        old,
        [(false, vec!["keyring".to_string(), "init".to_string()])]
    );
    assert!(!exists(&device, &["keyring", "init"]));
    assert!(exists(&vendor, &["keyring", "init"]));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut wrong = Vec::new();
    for dir in ["agent/src", "format/src", "release/src", "vendor/src"] {
        for file in rs_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (vendor_cmd, words) in hints(&text) {
                let w: Vec<&str> = words.iter().map(String::as_str).collect();
                let ok = if vendor_cmd {
                    exists(&vendor, &w)
                } else {
                    exists(&device, &w)
                };
                if !ok {
                    wrong.push(format!(
                        "{}: `updater{} {}`",
                        file.strip_prefix(&root).unwrap().display(),
                        if vendor_cmd { "-vendor" } else { "" },
                        w.join(" ")
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "hints naming commands that do not exist: {wrong:#?}"
    );
}

/// Every .rs file under `dir`.
fn rs_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rs_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Every `` `updater[-vendor] WORD [WORD] `` in `text`: whether it names
/// the vendor tool, and the words.
fn hints(text: &str) -> Vec<(bool, Vec<String>)> {
    {
        let mut out = Vec::new();
        for (at, _) in text.match_indices("`updater") {
            let rest = &text[at + "`updater".len()..];
            let (vendor, rest) = match rest.strip_prefix("-vendor") {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let Some(rest) = rest.strip_prefix(' ') else {
                continue;
            };
            let word = |s: &str| -> Option<(String, usize)> {
                let n = s
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                    .unwrap_or(s.len());
                let w = &s[..n];
                (!w.is_empty() && w.starts_with(|c: char| c.is_ascii_lowercase()))
                    .then(|| (w.to_string(), n))
            };
            let Some((first, n)) = word(rest) else {
                continue;
            };
            let mut words = vec![first];
            if let Some(r) = rest[n..].strip_prefix(' ') {
                if let Some((second, _)) = word(r) {
                    words.push(second);
                }
            }
            out.push((vendor, words));
        }
        out
    }
}
