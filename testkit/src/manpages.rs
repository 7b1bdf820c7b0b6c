//! Man pages and shell completions generated from a clap definition, and
//! the check that the copies committed under packaging/ have not drifted
//! from it. Both binaries use it: `updater` (packaging/man,
//! packaging/completions) and `updater-vendor` (packaging/vendor/…).
//!
//! clap_mangen renders a command's `after_help` as one filled paragraph,
//! which wraps an exit-code table mid-line; here the blocks of the long
//! help after the options ("Examples:", "Exit codes:") become real man
//! sections: EXAMPLES with verbatim commands, EXIT STATUS as a tagged list.

use std::path::Path;

use clap_complete::Shell;
use roff::{bold, roman, Roff};

/// Every generated file of `cmd`: its path under the packaging folder
/// (`man/NAME.1`, `completions/…`) and contents. One page per command and
/// nested command (`updater-vendor-release-create.1`, as `man
/// updater-vendor-release-create`).
pub fn generated(cmd: clap::Command) -> Vec<(String, Vec<u8>)> {
    let bin = cmd.get_name().to_string();
    // `help` is clap's own subcommand: no page of its own to point to.
    let mut built = no_help(cmd.clone());
    built.build();
    let mut out = Vec::new();
    pages(&built, &bin, &mut out);
    for (shell, file) in [
        (Shell::Bash, format!("{bin}.bash")),
        (Shell::Zsh, format!("_{bin}")),
        (Shell::Fish, format!("{bin}.fish")),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &bin, &mut buf);
        out.push((format!("completions/{file}"), buf));
    }
    out
}

/// `cmd` without clap's `help` subcommand, at every level.
fn no_help(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true).mut_subcommands(no_help)
}

/// The page of `cmd` (named `name`) and of each of its subcommands.
fn pages(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    out.push((
        format!("man/{name}.1"),
        page(cmd.clone().display_name(leaked)),
    ));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages(sub, &format!("{name}-{}", sub.get_name()), out);
    }
}

/// One man page: clap_mangen's sections, then the long help's blocks as
/// sections of their own, then the version.
fn page(cmd: clap::Command) -> Vec<u8> {
    let extra = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(|t| t.to_string());
    let version = cmd.get_version().is_some();
    let bare = cmd
        .clone()
        .after_help(None::<&str>)
        .after_long_help(None::<&str>)
        .version(None::<&str>);
    let mut buf = Vec::new();
    clap_mangen::Man::new(bare).render(&mut buf).unwrap();
    let mut roff = Roff::new();
    if let Some(text) = extra {
        sections(&mut roff, &text);
    }
    buf.extend(without_preamble(&roff).as_bytes());
    if version {
        let mut v = Vec::new();
        clap_mangen::Man::new(cmd)
            .render_version_section(&mut v)
            .unwrap();
        let preamble = Roff::new().render();
        buf.extend(v.strip_prefix(preamble.as_bytes()).unwrap_or(&v));
    }
    buf
}

/// `roff` rendered without the apostrophe preamble the page already has.
fn without_preamble(roff: &Roff) -> String {
    let preamble = Roff::new().render();
    let text = roff.render();
    text.strip_prefix(&preamble).unwrap_or(&text).to_string()
}

/// The blocks of a long help ("Heading:" then its lines, blocks apart by
/// blank lines) as man sections.
fn sections(roff: &mut Roff, text: &str) {
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(heading) = lines.next().and_then(|h| h.strip_suffix(':')) else {
            continue;
        };
        if heading == "Exit codes" {
            roff.control("SH", ["EXIT STATUS"]);
            for line in lines {
                let (code, meaning) = line
                    .trim()
                    .split_once(char::is_whitespace)
                    .unwrap_or((line.trim(), ""));
                roff.control("TP", []);
                roff.text([bold(code)]);
                roff.text([roman(meaning.trim())]);
            }
            continue;
        }
        roff.control("SH", [heading.to_uppercase().as_str()]);
        for line in lines {
            if let Some(command) = line.strip_prefix("    ") {
                // Verbatim, so it can be copied as it is.
                roff.control("RS", ["4"]);
                roff.control("nf", []);
                roff.text([roman(command)]);
                roff.control("fi", []);
                roff.control("RE", []);
            } else {
                roff.control("PP", []);
                roff.text([roman(line.trim())]);
            }
        }
    }
}

/// Compare `files` with the copies under `dir` (or write them, with
/// `UPDATER_BLESS` set): the drifted files, and any page under `dir/man`
/// that no command makes any more.
pub fn drift(dir: &Path, files: &[(String, Vec<u8>)]) -> Vec<String> {
    let bless = std::env::var_os("UPDATER_BLESS").is_some();
    let mut drift = Vec::new();
    for (rel, want) in files {
        let path = dir.join(rel);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, want).unwrap();
        } else if std::fs::read(&path).ok().as_ref() != Some(want) {
            drift.push(rel.clone());
        }
    }
    for entry in std::fs::read_dir(dir.join("man")).into_iter().flatten() {
        let name = format!("man/{}", entry.unwrap().file_name().to_string_lossy());
        if !files.iter().any(|(rel, _)| *rel == name) {
            if bless {
                std::fs::remove_file(dir.join(&name)).unwrap();
            } else {
                drift.push(format!("{name} (no such command)"));
            }
        }
    }
    drift
}
