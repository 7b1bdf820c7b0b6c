//! `[security]`: what the agent accepts about the files it trusts, and
//! where redirects may go.

use serde::Deserialize;

/// Security settings.
#[derive(Debug, Clone, Default)]
pub struct SecuritySettings {
    /// Use a state folder, keyring or health check that other users can
    /// change (with a warning) instead of refusing it.
    pub allow_insecure_permissions: bool,
}

/// `[security]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    allow_insecure_permissions: Option<bool>,
}

pub(super) fn validate(r: Raw) -> SecuritySettings {
    SecuritySettings {
        allow_insecure_permissions: r.allow_insecure_permissions.unwrap_or(false),
    }
}
