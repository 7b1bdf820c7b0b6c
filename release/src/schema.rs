//! The JSON Schemas of the release format, generated from the Rust types
//! (manifests/schema/ holds them; a test notices when they drift).

use updater_format::channel::Channel;
use updater_format::envelope::Envelope;
use updater_format::manifest::{ChunkTable, Manifest};

/// The schemas, by file name under manifests/schema/.
pub fn schemas() -> Vec<(&'static str, String)> {
    let gen = |s: schemars::schema::RootSchema| {
        let mut t = serde_json::to_string_pretty(&s).expect("schemas serialise");
        t.push('\n');
        t
    };
    vec![
        ("envelope.schema.json", gen(schemars::schema_for!(Envelope))),
        ("manifest.schema.json", gen(schemars::schema_for!(Manifest))),
        (
            "chunk-table.schema.json",
            gen(schemars::schema_for!(ChunkTable)),
        ),
        ("channel.schema.json", gen(schemars::schema_for!(Channel))),
    ]
}
