//! The release format: DSSE envelope, manifest, chunk tables, verification.

pub mod digest;
pub mod envelope;
pub mod types;
pub mod verify;

pub use digest::Sha256Digest;
pub use envelope::{Envelope, Signature, MANIFEST_PAYLOAD_TYPE};
pub use types::{ChunkTable, Image, Manifest};
pub use verify::{verify, Policy, Verified};

/// The JSON Schemas of the release format, by file name under manifests/schema/.
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
        (
            "channel.schema.json",
            gen(schemars::schema_for!(crate::channel::Channel)),
        ),
    ]
}
