//! The kernel command line, split into parameters the way the kernel splits
//! it (`next_arg` in lib/cmdline.c): parameters are separated by whitespace;
//! a `"` toggles quoting, so `"a b"` or `key="a b"` is one parameter; the
//! kernel removes a leading quote (and the matching trailing one) from the
//! parameter and from its value. So `"updater.slot=A"` is the parameter
//! `updater.slot` with value `A`, and an unbalanced `"` swallows the rest of
//! the line — which is why a manifest's command line must parse cleanly
//! before the agent appends its own parameters to it.

use std::fmt;

/// One parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The parameter as written (quotes included).
    pub raw: &'a str,
    /// The key, as the kernel sees it (quotes removed).
    pub key: String,
    /// The value after `=`, as the kernel sees it (quotes removed).
    pub value: Option<String>,
}

/// Why a command line does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineError {
    /// A `"` opened at this byte is never closed: the kernel would take the
    /// rest of the line as one parameter.
    UnbalancedQuote {
        /// Offset of the parameter with the open quote.
        at: usize,
    },
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::UnbalancedQuote { at } => write!(
                f,
                "the quote in the parameter at byte {at} is never closed, so the kernel would read the rest of the line as one parameter"
            ),
        }
    }
}

/// Whitespace as the kernel's `isspace` sees it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn unquote(s: &str) -> String {
    let s = s.strip_prefix('"').unwrap_or(s);
    s.strip_suffix('"').unwrap_or(s).to_string()
}

/// Split `line` into parameters.
pub fn parse(line: &str) -> Result<Vec<Param<'_>>, CmdlineError> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        let mut in_quote = false;
        let mut equals = None;
        while i < bytes.len() {
            let b = bytes[i];
            if is_space(b) && !in_quote {
                break;
            }
            if equals.is_none() && b == b'=' {
                equals = Some(i);
            }
            if b == b'"' {
                in_quote = !in_quote;
            }
            i += 1;
        }
        if in_quote {
            return Err(CmdlineError::UnbalancedQuote { at: start });
        }
        // Both ends are at char boundaries: they are ASCII bytes or the ends
        // of the string.
        let raw = &line[start..i];
        let (key, value) = match equals {
            Some(e) => (unquote(&line[start..e]), Some(unquote(&line[e + 1..i]))),
            None => (unquote(raw), None),
        };
        out.push(Param { raw, key, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(line: &str) -> Vec<(String, Option<String>)> {
        parse(line)
            .unwrap()
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    #[test]
    fn parses_as_the_kernel_does() {
        assert_eq!(
            keys("console=ttyS0  quiet"),
            [
                ("console".into(), Some("ttyS0".into())),
                ("quiet".into(), None)
            ]
        );
        // Quotes group spaces and are removed from key and value.
        assert_eq!(
            keys(r#"dyndbg="file foo.c +p" ro"#),
            [
                ("dyndbg".into(), Some("file foo.c +p".into())),
                ("ro".into(), None)
            ]
        );
        assert_eq!(
            keys(r#""updater.slot=A" quiet"#),
            [
                ("updater.slot".into(), Some("A".into())),
                ("quiet".into(), None)
            ]
        );
        assert_eq!(keys("a=b=c"), [("a".into(), Some("b=c".into()))]);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("   ").unwrap().is_empty());
    }

    #[test]
    fn an_open_quote_is_refused() {
        assert_eq!(
            parse(r#"quiet init="/bin/sh"#),
            Err(CmdlineError::UnbalancedQuote { at: 6 })
        );
        assert!(parse(r#"""#).is_err());
        assert!(parse(r#"a="x y"z" b"#).is_err());
    }
}
