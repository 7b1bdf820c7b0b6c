//! One poll: the plan (`flow::check`), then what it says, carried out by
//! the flows in one session.

use anyhow::Result;
use serde::Serialize;
use updater_format::channel::ChannelRelease;

use crate::clock::Clock;
use crate::config::{Settings, Strategy};
use crate::events::Logged;
use crate::fleet::Action;
use crate::flow::{self, Plan};
use crate::report::{self, Details, EventKind};
use crate::session::Session;
use crate::trial::{How, RealMachine};
use crate::util::notify;

/// What one poll did.
#[derive(Debug, Clone, Serialize)]
pub struct PollOutcome {
    /// The plan it followed.
    pub plan: Plan,
    /// What happened, in words.
    pub did: String,
}

/// One poll: plan, then carry the plan out in one session. `release` is set
/// to the release the channel named, once known (the daemon reports a
/// failure with it).
pub fn poll(
    settings: &Settings,
    clock: Clock,
    release: &mut Option<Details>,
) -> Result<PollOutcome> {
    let clock = clock.with_floor(crate::state::floor::floor(&settings.state_dir)?);
    let plan = flow::check::plan(settings, clock.now())?;
    // Said before acting: a trial restarts the machine, and what comes
    // after may never be logged.
    tracing::info!("{}", decision(&plan));
    let mut session = Session::open(settings, clock)?;
    // A root the plan accepted may reset floors: applied under the lock,
    // before the channel raises its replay floor again.
    session.apply_root_reset()?;
    // The replay floor: channels older than this one are refused from now.
    let (name, issued) = (plan.channel.clone(), plan.issued);
    if session
        .state()
        .channels_issued()
        .get(&name)
        .is_none_or(|t| *t < issued)
    {
        session.transition(|s, _| Ok(s.follow_channel(&name, issued)))?;
    }
    let details = Details {
        version: plan.release.as_ref().map(|r| r.version.to_string()),
        digest: plan.release.as_ref().map(|r| r.digest.hex()),
        slot: None,
        reason: None,
    };
    *release = Some(details.clone());
    let digest = details.digest.clone();
    let mut events = Logged;
    let did = match &plan.action {
        Action::Idle | Action::Wait { .. } => plan.reason.clone(),
        Action::Install {
            activate: then_boot,
        } => {
            let url = plan.manifest_url.as_deref().unwrap_or_default();
            notify::notify(&format!("STATUS=installing: {}", plan.reason));
            report::record(
                settings,
                EventKind::Downloading,
                details.clone(),
                clock.now(),
            );
            let applied = flow::apply(
                &mut session,
                &flow::Request {
                    source: url,
                    expect: digest.as_deref(),
                    ..Default::default()
                },
                RealMachine::new(settings).parts(),
                &mut events,
            )?;
            let flow::Applied::Installed { installed: out, .. } = applied else {
                unreachable!("an install without a trial never finishes a trial start")
            };
            report::record(
                settings,
                EventKind::Installed,
                Details {
                    slot: Some(out.group.clone()),
                    ..details
                },
                clock.now(),
            );
            // The window may have closed during a long download.
            let still = match settings.daemon.strategy {
                Strategy::Window => settings
                    .daemon
                    .window
                    .as_ref()
                    .is_some_and(|w| crate::fleet::window::window_contains(w, clock.now())),
                _ => true,
            };
            if *then_boot && still {
                activate(&mut session, digest.as_deref())?;
                format!(
                    "installed {} into slot {} and started its trial",
                    out.version, out.group
                )
            } else {
                format!("installed {} into slot {}", out.version, out.group)
            }
        }
        Action::Activate => {
            activate(&mut session, digest.as_deref())?;
            format!("started the trial: {}", plan.reason)
        }
    };
    Ok(PollOutcome { plan, did })
}

/// The plan's decision in words, for the journal.
fn decision(plan: &Plan) -> String {
    if plan.action == Action::Idle {
        return format!("nothing to do: {}", plan.reason);
    }
    // The strategy's reason says what is done; the channel says why.
    let why = match (&plan.release, plan.bucket) {
        (Some(r), Some(bucket)) => format!(
            " (channel {} names {} at {}%{}, and this device's bucket {bucket} is in it)",
            plan.channel,
            r.version,
            r.rollout_percent,
            plan.running
                .as_deref()
                .map(|v| format!(", newer than the {v} slot {} runs", plan.booted))
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    format!("decided: {}{why}", plan.reason)
}

/// Boot the installed release (which must be `digest`) as a trial, by
/// kexec or reboot as `kexec.policy` says. `trial-started` is reported by
/// the trial step itself, at the point of no return.
fn activate(session: &mut Session, digest: Option<&str>) -> Result<()> {
    notify::notify("STATUS=booting the new release as a trial");
    let settings = session.settings();
    let mut machine = RealMachine::new(settings);
    flow::activate(
        session,
        digest,
        How::from_policy(settings),
        machine.parts(),
        &mut Logged,
    )?;
    Ok(())
}

/// The release a plan names for this device.
pub fn planned_release(plan: &Plan) -> Option<&ChannelRelease> {
    plan.release.as_ref()
}
