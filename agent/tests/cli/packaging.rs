//! The man pages and shell completions in packaging/ are generated from the
//! CLI definition; this fails when the committed copies drift from it.
//! Regenerate with `UPDATER_BLESS=1 cargo test --test cli packaging`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn packaging() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging")
}

/// Every generated file: path under packaging/ and contents.
fn generated() -> Vec<(String, Vec<u8>)> {
    updater_testkit::manpages::generated(updater::cli::Cli::command())
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
    let files = generated();
    let drift = updater_testkit::manpages::drift(&packaging(), &files);
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

/// Every page ends with the whole exit-code table as a tagged list (one
/// entry per code, so `man` never wraps a meaning into the next code),
/// names no page that is not shipped, and the commands a new user runs
/// first carry examples.
#[test]
fn man_pages_list_every_exit_code_and_show_examples() {
    let files = generated();
    let page = |name: &str| {
        let (_, text) = files
            .iter()
            .find(|(rel, _)| rel == &format!("man/{name}.1"))
            .unwrap_or_else(|| panic!("no page {name}"));
        String::from_utf8(text.clone()).unwrap()
    };
    let pages: Vec<&String> = files
        .iter()
        .map(|(rel, _)| rel)
        .filter(|r| r.starts_with("man/"))
        .collect();
    for rel in &pages {
        let name = rel.trim_start_matches("man/").trim_end_matches(".1");
        let text = page(name);
        for (code, meaning) in updater::error::EXIT_CODES {
            let entry = format!(
                ".TP\n\\fB{}\\fR\n{}",
                code.code(),
                meaning.replace('-', "\\-")
            );
            assert!(
                text.contains(&entry),
                "{rel}: exit code {} is not its own entry:\n{text}",
                code.code()
            );
        }
        assert!(
            !text.contains("help(1)"),
            "{rel} names a help page that is not shipped"
        );
        // Every page it names exists.
        for word in text.replace("\\-", "-").split_whitespace() {
            if let Some(named) = word.strip_suffix("(1)") {
                assert!(
                    pages.contains(&&format!("man/{named}.1")),
                    "{rel} names {named}(1), which is not generated"
                );
            }
        }
    }
    for (name, example) in [
        (
            "updater-apply",
            "updater apply https://updates.example.com/gw/stable.json \\-\\-kexec",
        ),
        ("updater-status", "updater status \\-\\-json"),
        ("updater-health", "updater health"),
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
    }
}

/// `-h` and `--help` of every command end with the exit codes, 11 too.
#[test]
fn every_help_lists_every_exit_code() {
    let cmd = updater::cli::Cli::command();
    let mut cmds: Vec<clap::Command> = vec![cmd.clone()];
    cmds.extend(cmd.get_subcommands().cloned());
    for mut c in cmds {
        let name = c.get_name().to_string();
        for long in [false, true] {
            let help = if long {
                c.render_long_help()
            } else {
                c.render_help()
            }
            .to_string();
            for (code, meaning) in updater::error::EXIT_CODES {
                assert!(
                    help.contains(&format!("{:>2}  {meaning}", code.code())),
                    "{name} {}: exit code {} missing from\n{help}",
                    if long { "--help" } else { "-h" },
                    code.code()
                );
            }
        }
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
