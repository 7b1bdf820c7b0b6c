//! Channels: a signed document naming, per `compatible`, the release a fleet
//! should run and how much of the fleet should run it yet.
//!
//! The channel is a DSSE envelope (payload type [`CHANNEL_PAYLOAD_TYPE`])
//! signed by keys of the keyring's `channel` role. It only points: the
//! release it names is still verified against the manifest role, and the
//! channel pins that release's digest, so a channel key can steer devices
//! between releases the vendor signed but never make one. A short `expires`
//! makes a frozen channel (an attacker or a broken CDN serving an old copy
//! forever) visible, and the device refuses a channel issued before the
//! newest one it acted on (a replayed, superseded channel).
//!
//! Rollout: each device has a stable bucket in 0..10000 per release
//! version, derived from its device id and the version (see [`bucket`]). A
//! device is in the rollout when its bucket is below `rollout_percent` × 100,
//! so raising the percentage only ever adds devices, re-signing a release
//! (a new digest) keeps its cohort, and each version picks a different first
//! quarter of the fleet.

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::{verify_threshold, Envelope};
use crate::error::{usage, Rejected};
use crate::keys::{Keyring, Role};
use crate::names::check_plain_name;
use crate::Sha256Digest;

/// The DSSE payload type of a channel document.
pub const CHANNEL_PAYLOAD_TYPE: &str = "application/vnd.updater.channel+json";
/// The channel schema this agent reads and writes.
pub const CHANNEL_SCHEMA: u64 = 1;
pub use crate::limits::CHANNEL_SIZE_CAP;
/// How far in the future `issued` may be before the device's clock is
/// suspected rather than the channel.
pub const CLOCK_SKEW_SECS: i64 = 300;
/// Buckets per device: rollout percentages have two decimals.
pub const BUCKETS: u32 = 10_000;

/// A channel document (the DSSE payload).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Schema version, 1.
    pub schema: u64,
    /// Channel name, e.g. `stable`.
    pub name: String,
    /// When it was signed; a device refuses one older than the newest it
    /// acted on.
    pub issued: DateTime<Utc>,
    /// After this the channel is refused: the publisher re-signs it well
    /// before (a cron job), so an expired channel means it is frozen.
    pub expires: DateTime<Utc>,
    /// The current release per compatible string.
    pub releases: Vec<ChannelRelease>,
}

/// The release a channel names for one compatible string.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelRelease {
    /// Devices whose `compatible` is this follow this entry.
    pub compatible: String,
    /// The release version (from its manifest).
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub version: semver::Version,
    /// The manifest's URL, absolute or relative to the channel's URL.
    pub manifest: String,
    /// The release digest: sha256 of the manifest's signed payload (what
    /// `updater verify` prints and the state records).
    pub digest: Sha256Digest,
    /// Share of the devices that should install it, 0 to 100 (two decimals).
    pub rollout_percent: f64,
    /// Devices may download before this time but do not boot the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
}

impl Channel {
    /// The entry for a device of `compatible`.
    pub fn release_for(&self, compatible: &str) -> Option<&ChannelRelease> {
        self.releases.iter().find(|r| r.compatible == compatible)
    }
}

impl ChannelRelease {
    /// The rollout threshold in buckets.
    pub fn rollout_buckets(&self) -> u32 {
        (self.rollout_percent * 100.0)
            .round()
            .clamp(0.0, BUCKETS as f64) as u32
    }
}

/// The device's bucket for a release version: the first 8 bytes of
/// sha256("updater-rollout-v1\n" + device id + "\n" + version), big-endian,
/// modulo 10000. Documented in docs/fleet.md so that a fleet tool can
/// compute it too.
pub fn bucket(device_id: &str, version: &semver::Version) -> u32 {
    let mut h = Sha256::new();
    h.update(b"updater-rollout-v1\n");
    h.update(device_id.as_bytes());
    h.update(b"\n");
    h.update(version.to_string().as_bytes());
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    (u64::from_be_bytes(first) % BUCKETS as u64) as u32
}

/// What the device expects of a channel besides its signature.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The channel name this device follows (a validly signed channel of
    /// another name, say `beta` served in place of `stable`, is refused).
    pub name: &'a str,
    /// The time now.
    pub now: DateTime<Utc>,
    /// The longest validity (`expires - issued`) accepted: the publisher
    /// cannot switch freeze detection off with an expiry years ahead.
    pub max_validity: crate::limits::Limit<chrono::Duration>,
}

/// The error when a keyring cannot verify channels.
pub fn require_channel_role(keyring: &Keyring) -> Result<()> {
    if keyring.has_role(Role::Channel) {
        Ok(())
    } else {
        Err(usage(
            "the keyring has no channel keys: add a [channel] role (`updater-vendor keyring init ... --channel-key KEY`, format in keys/README.md)",
        ))
    }
}

/// Verify a channel document: size, envelope, channel-role threshold,
/// schema, structure, name, validity and expiry.
pub fn verify(bytes: &[u8], keyring: &Keyring, expect: &Expect) -> Result<Channel> {
    require_channel_role(keyring)?;
    Ok(verify_signed(bytes, keyring, expect)?)
}

fn verify_signed(bytes: &[u8], keyring: &Keyring, expect: &Expect) -> Result<Channel, Rejected> {
    let now = expect.now;
    if bytes.len() as u64 > CHANNEL_SIZE_CAP {
        return Err(Rejected::TooLarge {
            what: "channel",
            size: bytes.len() as u64,
            cap: CHANNEL_SIZE_CAP,
        });
    }
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| Rejected::Malformed {
        what: "channel envelope",
        reason: e.to_string(),
    })?;
    if env.payload_type != CHANNEL_PAYLOAD_TYPE {
        return Err(Rejected::PayloadType {
            found: env.payload_type,
            expected: CHANNEL_PAYLOAD_TYPE,
        });
    }
    let payload = env.payload_bytes()?;
    verify_threshold(
        CHANNEL_PAYLOAD_TYPE,
        &payload,
        &env.signatures,
        keyring,
        Role::Channel,
    )?;
    let channel = parse(&payload)?;
    check_structure(&channel).map_err(Rejected::Channel)?;
    if channel.name != expect.name {
        return Err(Rejected::Channel(format!(
            "the document is channel {:?}, this device follows {:?}; check which channel the device is set to follow, or the server's files",
            channel.name, expect.name
        )));
    }
    if channel.expires - channel.issued > expect.max_validity.value {
        return Err(Rejected::Channel(format!(
            "channel {:?} is valid for {} days ({} to {}), longer than the {} days this device accepts ({}); publish it with a shorter --expires",
            channel.name,
            (channel.expires - channel.issued).num_days(),
            channel.issued.to_rfc3339(),
            channel.expires.to_rfc3339(),
            expect.max_validity.value.num_days(),
            expect.max_validity.setting
        )));
    }
    if now > channel.expires {
        return Err(Rejected::Channel(format!(
            "channel {:?} expired at {} (now {}); the publisher must re-sign it (`updater-vendor channel publish`): a channel that stops being refreshed may be frozen by an attacker",
            channel.name,
            channel.expires.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    if channel.issued > now + chrono::Duration::seconds(CLOCK_SKEW_SECS) {
        return Err(Rejected::Channel(format!(
            "channel {:?} was issued at {}, in the future (now {}); check the device clock",
            channel.name,
            channel.issued.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    Ok(channel)
}

/// Parse a channel payload, refusing unknown schemas before unknown fields
/// (the signature is checked before this is called; fuzzed on its own).
pub fn parse(payload: &[u8]) -> Result<Channel, Rejected> {
    #[derive(Deserialize)]
    struct SchemaOnly {
        schema: u64,
    }
    let s: SchemaOnly = serde_json::from_slice(payload).map_err(|e| Rejected::Malformed {
        what: "channel",
        reason: e.to_string(),
    })?;
    if s.schema != CHANNEL_SCHEMA {
        return Err(Rejected::Channel(format!(
            "channel schema {} is not supported (this agent reads schema {CHANNEL_SCHEMA}); upgrade the agent",
            s.schema
        )));
    }
    serde_json::from_slice(payload).map_err(|e| Rejected::Malformed {
        what: "channel",
        reason: e.to_string(),
    })
}

/// Rules the types alone cannot express (also checked by `channel publish`
/// before it signs).
pub fn check_structure(c: &Channel) -> Result<(), String> {
    let bad = |m: String| Err(m);
    if let Err(e) = check_plain_name(&c.name, "channel name") {
        return bad(e.to_string());
    }
    if c.expires <= c.issued {
        return bad(format!(
            "channel {:?} expires ({}) before it was issued ({})",
            c.name, c.expires, c.issued
        ));
    }
    if c.releases.len() > crate::limits::MAX_CHANNEL_RELEASES {
        return bad(format!(
            "channel {:?} names {} releases, more than the {} allowed",
            c.name,
            c.releases.len(),
            crate::limits::MAX_CHANNEL_RELEASES
        ));
    }
    for (i, r) in c.releases.iter().enumerate() {
        if c.releases[..i].iter().any(|o| o.compatible == r.compatible) {
            return bad(format!(
                "channel {:?} names two releases for compatible {:?}",
                c.name, r.compatible
            ));
        }
        if !(0.0..=100.0).contains(&r.rollout_percent) {
            return bad(format!(
                "rollout_percent {} for {:?} is not between 0 and 100",
                r.rollout_percent, r.compatible
            ));
        }
        if r.manifest.is_empty() {
            return bad(format!("the manifest URL for {:?} is empty", r.compatible));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        let v = semver::Version::new(2, 1, 0);
        // A fixed vector, computed independently with
        // python3 -c 'import hashlib; h=hashlib.sha256(b"updater-rollout-v1\ndevice-0001\n2.1.0").digest(); print(int.from_bytes(h[:8],"big")%10000)'
        assert_eq!(bucket("device-0001", &v), BUCKET_VECTOR);
        let mut below = 0;
        for i in 0..2000 {
            if bucket(&format!("device-{i:04}"), &v) < 2500 {
                below += 1;
            }
        }
        assert!((400..600).contains(&below), "{below} of 2000 below 25%");
        // Another version draws another quarter: about a quarter of that
        // quarter again, far from all of it.
        let other = semver::Version::new(2, 2, 0);
        let both = (0..2000)
            .filter(|i| {
                let id = format!("device-{i:04}");
                bucket(&id, &v) < 2500 && bucket(&id, &other) < 2500
            })
            .count();
        assert!(
            (60..200).contains(&both),
            "{both} devices in both first quarters"
        );
    }

    const BUCKET_VECTOR: u32 = 1499;
}
