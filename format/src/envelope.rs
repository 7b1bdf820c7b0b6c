//! The DSSE envelope that carries a manifest, and signatures over DSSE's
//! pre-authentication encoding (PAE).
//!
//! DSSE signs the exact payload bytes together with their type, so there is
//! no JSON canonicalisation to get wrong, and a signature for one payload
//! type can never be replayed as another.

use std::collections::BTreeSet;

use base64::Engine;
use ed25519_dalek::{Signature as EdSignature, Signer as _};
use serde::{Deserialize, Serialize};

use crate::error::Rejected;
use crate::keys::{KeyId, Keyring, PrivateKey, Role, RoleKeys};

/// The payload type of a release manifest.
pub const MANIFEST_PAYLOAD_TYPE: &str = "application/vnd.updater.manifest+json";

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The payload's media type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, base64 (standard alphabet).
    pub payload: String,
    /// Signatures over PAE(payloadType, payload).
    pub signatures: Vec<Signature>,
}

/// One signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Hex sha256 of the signer's SPKI DER (a hint: the signature is checked
    /// against that key only).
    pub keyid: String,
    /// The ed25519 signature, base64.
    pub sig: String,
}

/// DSSE's pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII
/// decimal.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(body);
    out
}

/// Sign `body` of `payload_type` with `key`.
pub fn sign(payload_type: &str, body: &[u8], key: &PrivateKey) -> Signature {
    let sig: EdSignature = key.key.sign(&pae(payload_type, body));
    Signature {
        keyid: key.id.to_string(),
        sig: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
    }
}

/// Something that makes ed25519 signatures: a private key in memory, or
/// (in the vendor tooling) an external signer such as an HSM, which never
/// hands its key out.
pub trait Signer {
    /// The id of the signing key's public key.
    fn key_id(&self) -> KeyId;
    /// The raw 64-byte ed25519 signature over `message` (a DSSE PAE).
    fn sign_raw(&self, message: &[u8]) -> anyhow::Result<[u8; 64]>;
}

impl Signer for PrivateKey {
    fn key_id(&self) -> KeyId {
        self.id.clone()
    }

    fn sign_raw(&self, message: &[u8]) -> anyhow::Result<[u8; 64]> {
        Ok(self.key.sign(message).to_bytes())
    }
}

/// Sign `body` of `payload_type` with any signer.
pub fn sign_with(
    payload_type: &str,
    body: &[u8],
    signer: &dyn Signer,
) -> anyhow::Result<Signature> {
    let sig = signer.sign_raw(&pae(payload_type, body))?;
    Ok(Signature {
        keyid: signer.key_id().to_string(),
        sig: base64::engine::general_purpose::STANDARD.encode(sig),
    })
}

/// Decode base64 in either alphabet, padded or not: DSSE allows all four, and
/// other DSSE tools emit URL-safe.
pub fn decode_b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    STANDARD
        .decode(s)
        .or_else(|_| STANDARD_NO_PAD.decode(s))
        .or_else(|_| URL_SAFE.decode(s))
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
}

/// Check `signatures` over PAE(`payload_type`, `body`) against the keys of
/// `role`: at least the role's threshold of *distinct* keys must have a valid
/// signature (`verify_strict`, which also refuses small-order keys and
/// non-canonical signatures). Returns the ids of the keys that signed.
pub fn verify_threshold(
    payload_type: &str,
    body: &[u8],
    signatures: &[Signature],
    keyring: &Keyring,
    role: Role,
) -> Result<Vec<String>, Rejected> {
    verify_role(
        payload_type,
        body,
        signatures,
        keyring.role(role),
        role.name(),
        &|id| keyring.role_of(id).map(|r| r.name()),
    )
}

/// [`verify_threshold`] against any set of keys: `role_keys` are the keys
/// that count, `role` names them in messages, and `other_role` names the
/// role of a key that signed but does not count (for the message).
pub fn verify_role(
    payload_type: &str,
    body: &[u8],
    signatures: &[Signature],
    role_keys: &RoleKeys,
    role: &'static str,
    other_role: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<Vec<String>, Rejected> {
    if signatures.len() > crate::limits::MAX_SIGNATURES {
        return Err(Rejected::Invalid(format!(
            "the document carries {} signatures, more than the {} allowed",
            signatures.len(),
            crate::limits::MAX_SIGNATURES
        )));
    }
    let message = pae(payload_type, body);
    let mut valid = BTreeSet::new();
    let mut problems = Vec::new();
    for (i, s) in signatures.iter().enumerate() {
        let n = i + 1;
        let short = &s.keyid[..16.min(s.keyid.len())];
        let Some((id, key)) = role_keys.keys.iter().find(|(id, _)| id.as_str() == s.keyid) else {
            match other_role(&s.keyid) {
                Some(other) => problems.push(format!(
                    "signature {n} is by {other}-role key {short}, not a {role}-role key"
                )),
                None => problems.push(format!("signature {n} is by unknown key {short:?}")),
            }
            continue;
        };
        let sig_bytes = match decode_b64(&s.sig) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("signature {n} is not base64 ({e})"));
                continue;
            }
        };
        let Ok(sig) = EdSignature::from_slice(&sig_bytes) else {
            problems.push(format!(
                "signature {n} is {} bytes, an ed25519 signature is 64",
                sig_bytes.len()
            ));
            continue;
        };
        if key.key.verify_strict(&message, &sig).is_err() {
            problems.push(format!("signature {n} by key {short} does not verify"));
            continue;
        }
        if !valid.insert(id.clone()) {
            // The same key signing twice is still one key: counting it twice
            // would let one stolen key meet a threshold of two.
            problems.push(format!(
                "signature {n} repeats key {short} and is counted once"
            ));
        }
    }
    if valid.len() < role_keys.threshold {
        if signatures.is_empty() {
            problems.push("there are no signatures".into());
        }
        return Err(Rejected::Threshold {
            role,
            valid: valid.len(),
            threshold: role_keys.threshold,
            problems,
        });
    }
    Ok(valid.into_iter().map(|k| k.to_string()).collect())
}

impl Envelope {
    /// Wrap and sign a payload.
    pub fn seal(payload_type: &str, body: &[u8], keys: &[&PrivateKey]) -> Envelope {
        Envelope {
            payload_type: payload_type.to_string(),
            payload: base64::engine::general_purpose::STANDARD.encode(body),
            signatures: keys.iter().map(|k| sign(payload_type, body, k)).collect(),
        }
    }

    /// Wrap and sign a payload with any signers.
    pub fn seal_with(
        payload_type: &str,
        body: &[u8],
        signers: &[&dyn Signer],
    ) -> anyhow::Result<Envelope> {
        Ok(Envelope {
            payload_type: payload_type.to_string(),
            payload: base64::engine::general_purpose::STANDARD.encode(body),
            signatures: signers
                .iter()
                .map(|s| sign_with(payload_type, body, *s))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// The decoded payload.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, Rejected> {
        decode_b64(&self.payload).map_err(|e| Rejected::Malformed {
            what: "envelope",
            reason: format!("payload is not base64: {e}"),
        })
    }

    /// Serialise as pretty JSON with a final newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("an envelope always serialises");
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }
}
