//! `updater status`: what each slot group holds, what boots, why the last
//! attempt failed, and what the running kernel lets a kexec do. Read-only and lock-free, so it works while an
//! install runs; it never writes (a missing file env is not created).

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use crate::config::Settings;
use crate::error::OneLine;
use crate::state::{read_state, STATE_FILE};

/// The status report: booted group, each group's state, the pending trial.
pub fn status(settings: &Settings) -> Result<serde_json::Value> {
    let booted = crate::session::booted_group(settings).map_err(|e| OneLine(&e).to_string());
    let state = read_state(&settings.state_dir.join(STATE_FILE))?;
    let boot = crate::bootloader::open(settings).ok();
    let primary = boot.as_ref().and_then(|b| b.primary().ok().flatten());
    let mut groups = BTreeMap::new();
    for g in &settings.slots {
        let gs = state
            .as_ref()
            .map(|s| s.group(&g.name).clone())
            .unwrap_or_default();
        let bootable = boot.as_ref().and_then(|b| b.bootable(&g.name).ok());
        groups.insert(
            g.name.clone(),
            json!({
                "status": gs.status().name(),
                "version": gs.version(),
                "digest": gs.digest(),
                "last_error": gs.last_error(),
                "updated": gs.updated().map(|t| t.to_rfc3339()),
                "bootable": bootable,
                "primary": primary.as_deref() == Some(g.name.as_str()),
                "booted": booted.as_deref().ok() == Some(g.name.as_str()),
            }),
        );
    }
    Ok(json!({
        "booted": booted.as_ref().ok(),
        "booted_error": booted.as_ref().err(),
        "primary": primary,
        "groups": groups,
        "highest_security_version": state.as_ref().map(|s| s.highest_security_version()),
        "install": state.as_ref().and_then(|s| s.install().cloned()),
        "trial": state.as_ref().and_then(|s| s.trial().cloned()),
        "bad_releases": state.as_ref().map(|s| s.bad_releases().to_vec()).unwrap_or_default(),
        "channels_issued": state.as_ref().map(|s| s.channels_issued().clone()).unwrap_or_default(),
        "reports_pending": crate::report::Outbox::new(&settings.state_dir).pending().map(|p| p.len()).ok(),
        "last_install": last_install(settings),
        "kernel": crate::trial::kexec::kernel::facts(&settings.kexec.sys_root),
        "root": crate::trust::status(settings),
        "state_file": settings.state_dir.join(STATE_FILE),
    }))
}

/// What the last completed install fetched and reused, as it recorded it
/// (None before the first, or when the record cannot be read).
fn last_install(settings: &Settings) -> Option<serde_json::Value> {
    let path = crate::state::last_install(&settings.state_dir);
    // Bounded: the agent writes a few hundred bytes.
    let bytes = std::fs::read(&path).ok().filter(|b| b.len() < 64 * 1024)?;
    serde_json::from_slice(&bytes).ok()
}
