//! `channel publish`: sign a channel document naming, per compatible
//! string, the release devices should run and the share of them that should
//! run it yet.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use updater_format::channel::{
    check_structure, Channel, ChannelRelease, CHANNEL_PAYLOAD_TYPE, CHANNEL_SCHEMA,
};
use updater_format::envelope::Envelope;
use updater_format::error::{usage, Rejected};
use updater_format::manifest::verify::{parse_manifest, MANIFEST_SIZE_CAP};
use updater_format::names::check_plain_name;
use updater_format::Sha256Digest;

use crate::fs::parent_dir;

/// One `--release COMPATIBLE=MANIFEST[@PERCENT]` of `channel publish`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseArg {
    /// The compatible string.
    pub compatible: String,
    /// The manifest URL or path, as it goes into the channel.
    pub manifest: String,
    /// Rollout percentage (default 100).
    pub percent: f64,
}

impl std::str::FromStr for ReleaseArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (compatible, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not COMPATIBLE=MANIFEST_URL[@PERCENT]"))?;
        // The percentage is what follows the last '@' when it is a number; an
        // '@' inside the URL (user info) is left alone.
        let (manifest, percent) = match rest.rsplit_once('@') {
            Some((m, p)) if p.trim_end_matches('%').parse::<f64>().is_ok() => {
                (m, p.trim_end_matches('%').parse::<f64>().unwrap_or(100.0))
            }
            _ => (rest, 100.0),
        };
        if compatible.is_empty() || manifest.is_empty() {
            return Err(format!("{s:?} is not COMPATIBLE=MANIFEST_URL[@PERCENT]"));
        }
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!(
                "rollout {percent} in {s:?} is not between 0 and 100"
            ));
        }
        Ok(ReleaseArg {
            compatible: compatible.to_string(),
            manifest: manifest.to_string(),
            percent,
        })
    }
}

/// What `channel publish` needs.
pub struct PublishOptions<'a> {
    /// Channel name.
    pub name: String,
    /// Where the channel file goes (relative manifest paths are read from
    /// its folder, as a device would resolve them).
    pub out: &'a Path,
    /// The releases.
    pub releases: Vec<ReleaseArg>,
    /// Earliest boot time per compatible.
    pub not_before: Vec<(String, DateTime<Utc>)>,
    /// Issue time (now).
    pub issued: DateTime<Utc>,
    /// Expiry.
    pub expires: DateTime<Utc>,
    /// Signers (channel role): keys, or external signers.
    pub keys: Vec<Box<dyn updater_format::envelope::Signer>>,
}

/// Build and sign a channel: reads each named manifest to pin its digest
/// and version, and refuses a release that does not list the compatible it
/// is published for.
pub fn publish(o: &PublishOptions) -> Result<(Channel, Envelope)> {
    if o.keys.is_empty() {
        return Err(usage(
            "channel publish needs at least one --key or --signer",
        ));
    }
    check_plain_name(&o.name, "channel name").map_err(|e| usage(e.to_string()))?;
    if o.expires <= o.issued {
        return Err(usage(format!(
            "--expires {} is not after now ({})",
            o.expires.to_rfc3339(),
            o.issued.to_rfc3339()
        )));
    }
    let out_dir = parent_dir(o.out);
    let mut releases = Vec::new();
    for r in &o.releases {
        let bytes = read_manifest(&r.manifest, out_dir)
            .with_context(|| format!("reading the manifest for {}", r.compatible))?;
        let env: Envelope = serde_json::from_slice(&bytes).map_err(|e| Rejected::Malformed {
            what: "envelope",
            reason: e.to_string(),
        })?;
        let payload = env.payload_bytes()?;
        let m = parse_manifest(&payload)?;
        if !m.compatible.iter().any(|c| c == &r.compatible) {
            return Err(usage(format!(
                "release {} at {} is for {:?}, not for {:?}",
                m.version, r.manifest, m.compatible, r.compatible
            )));
        }
        let not_before = o
            .not_before
            .iter()
            .find(|(c, _)| c == &r.compatible)
            .map(|(_, t)| *t);
        releases.push(ChannelRelease {
            compatible: r.compatible.clone(),
            version: m.version.clone(),
            manifest: r.manifest.clone(),
            digest: Sha256Digest::of(&payload),
            rollout_percent: r.percent,
            not_before,
        });
    }
    for (c, _) in &o.not_before {
        if !o.releases.iter().any(|r| &r.compatible == c) {
            return Err(usage(format!(
                "--not-before names {c:?}, which has no --release"
            )));
        }
    }
    let channel = Channel {
        schema: CHANNEL_SCHEMA,
        name: o.name.clone(),
        issued: o.issued,
        expires: o.expires,
        releases,
    };
    check_structure(&channel).map_err(usage)?;
    let body = serde_json::to_vec_pretty(&channel).context("encoding the channel")?;
    let env = Envelope::seal_with(CHANNEL_PAYLOAD_TYPE, &body, &crate::signer::refs(&o.keys))?;
    Ok((channel, env))
}

/// Read a manifest the channel names: by URL (http, https, file) or by a
/// path relative to the channel file's folder, capped at the manifest size
/// limit. Over HTTP a plain client with timeouts is enough: this runs on the
/// vendor's host, and what is read is only hashed and parsed, never trusted.
fn read_manifest(manifest: &str, out_dir: &Path) -> Result<Vec<u8>> {
    if manifest.starts_with("http://") || manifest.starts_with("https://") {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(15))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("setting up the HTTP client")?;
        let resp = client
            .get(manifest)
            .send()
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("GET {manifest}"))?;
        let mut bytes = Vec::new();
        resp.take(MANIFEST_SIZE_CAP + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {manifest}"))?;
        if bytes.len() as u64 > MANIFEST_SIZE_CAP {
            return Err(usage(format!(
                "{manifest} is larger than a manifest can be ({MANIFEST_SIZE_CAP} bytes)"
            )));
        }
        return Ok(bytes);
    }
    let path = match manifest.strip_prefix("file://") {
        Some(p) => Path::new(p).to_path_buf(),
        None => out_dir.join(manifest),
    };
    std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (a relative manifest path is taken from the channel file's folder)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_args_parse() {
        let r: ReleaseArg = "acme-gw=gw-1.2/manifest.json@25".parse().unwrap();
        assert_eq!(
            (r.compatible.as_str(), r.manifest.as_str(), r.percent),
            ("acme-gw", "gw-1.2/manifest.json", 25.0)
        );
        let r: ReleaseArg = "acme-gw=https://u:p@h/m.json".parse().unwrap();
        assert_eq!(
            (r.manifest.as_str(), r.percent),
            ("https://u:p@h/m.json", 100.0)
        );
        assert!("acme-gw=m.json@101".parse::<ReleaseArg>().is_err());
        assert!("m.json".parse::<ReleaseArg>().is_err());
    }
}
