//! Fetching a channel document, and resolving the manifest URLs it names.

use std::path::Path;

use anyhow::Result;

use crate::error::usage;

/// Resolve a channel entry's manifest reference against the channel's own
/// URL (http, https, file URL or path).
pub fn resolve(channel_url: &str, manifest: &str) -> Result<String> {
    let remote = channel_url.starts_with("http://") || channel_url.starts_with("https://");
    if manifest.contains("://") {
        // A channel fetched over the network never names a file on the
        // device: that would turn a remote document into a local read.
        if remote && !(manifest.starts_with("http://") || manifest.starts_with("https://")) {
            return Err(crate::error::Rejected::Channel(format!(
                "the channel from {channel_url} names the manifest {manifest:?}: a remote channel may only name http or https manifests"
            ))
            .into());
        }
        return Ok(manifest.to_string());
    }
    if channel_url.starts_with("http://") || channel_url.starts_with("https://") {
        let base = reqwest::Url::parse(channel_url)
            .map_err(|e| usage(format!("channel URL {channel_url:?}: {e}")))?;
        return Ok(base
            .join(manifest)
            .map_err(|e| usage(format!("joining {manifest:?} to {channel_url}: {e}")))?
            .to_string());
    }
    let path = channel_url.strip_prefix("file://").unwrap_or(channel_url);
    let dir = crate::util::fs::parent_dir(Path::new(path));
    Ok(dir.join(manifest).display().to_string())
}

/// A fetcher for a channel document (http, https, file URL or path) and
/// the files beside it (its root documents).
pub fn channel_fetcher(
    url: &str,
    http: &crate::config::HttpSettings,
) -> Result<Box<dyn super::Fetcher>> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Box::new(super::HttpFetcher::new(url, http)?));
    }
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    if !path.is_file() {
        return Err(crate::error::FetchError(format!(
            "channel {} does not exist (or is not a file); check daemon.channel",
            path.display()
        ))
        .into());
    }
    Ok(Box::new(super::DirFetcher::new(path)?))
}

/// Fetch a channel document with `fetcher` (from [`channel_fetcher`]),
/// size-capped.
pub fn fetch_channel(
    fetcher: &mut dyn super::Fetcher,
    budget: &mut super::RetryBudget,
) -> Result<Vec<u8>> {
    super::fetch_small(
        fetcher,
        None,
        0,
        updater_format::channel::CHANNEL_SIZE_CAP,
        "channel",
        budget,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_manifests_resolve_against_the_channel() {
        assert_eq!(
            resolve(
                "https://u.example/gw/stable/channel.json",
                "../r/1.2/manifest.json"
            )
            .unwrap(),
            "https://u.example/gw/r/1.2/manifest.json"
        );
        assert_eq!(
            resolve("/srv/gw/channel.json", "1.2/manifest.json").unwrap(),
            "/srv/gw/1.2/manifest.json"
        );
        assert_eq!(
            resolve("/srv/gw/channel.json", "http://x/m.json").unwrap(),
            "http://x/m.json"
        );
        // A remote channel never names a local file.
        for local in ["file:///etc/updater/m.json", "ftp://x/m.json"] {
            let e = resolve("https://u.example/gw/stable.json", local)
                .unwrap_err()
                .to_string();
            assert!(e.contains("may only name http or https"), "{e}");
        }
    }
}
