//! External signers: every signing command takes `--signer PUB=COMMAND`
//! beside (or instead of) `--key FILE`. COMMAND runs under `sh -c`, receives
//! the exact bytes to sign (the DSSE pre-authentication encoding) on stdin
//! and writes the raw 64-byte ed25519 signature on stdout. A PKCS#11 token
//! (`pkcs11-tool --sign --mechanism EDDSA`), a cloud KMS client or
//! `openssl pkeyutl -sign -rawin` all fit, and no private key is ever a
//! file this tool reads. PUB is the signer's public key (SPKI PEM): it names
//! the key in the envelope, and every signature the command returns is
//! verified against it before it is used (a token that signed with another
//! key, or printed anything else, is caught here and not on the devices).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use updater_format::envelope::Signer;
use updater_format::error::usage;
use updater_format::keys::{read_private_key, read_public_key, KeyId, PublicKey};

/// A signer that runs a command.
#[derive(Debug, Clone)]
pub struct CommandSigner {
    command: String,
    public: PublicKey,
    origin: PathBuf,
}

impl CommandSigner {
    /// Parse `PUB=COMMAND`: the public key file, then the command line.
    pub fn parse(spec: &str) -> Result<CommandSigner> {
        let (public, command) = spec.split_once('=').ok_or_else(|| {
            usage(format!(
                "--signer {spec:?} is not PUBLIC-KEY-FILE=COMMAND (e.g. 'k.pub=pkcs11-tool --sign ...')"
            ))
        })?;
        if command.trim().is_empty() {
            return Err(usage(format!("--signer {spec:?} has no command")));
        }
        let origin = PathBuf::from(public);
        Ok(CommandSigner {
            command: command.to_string(),
            public: read_public_key(&origin)?,
            origin,
        })
    }
}

impl Signer for CommandSigner {
    fn key_id(&self) -> KeyId {
        self.public.id.clone()
    }

    fn sign_raw(&self, message: &[u8]) -> Result<[u8; 64]> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the signer {:?}", self.command))?;
        // Written from a thread: a signer that writes before it has read all
        // of stdin must not deadlock against a full pipe.
        let mut stdin = child.stdin.take().expect("piped stdin");
        let msg = message.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&msg));
        let mut out = Vec::new();
        child
            .stdout
            .take()
            .expect("piped stdout")
            .take(4096)
            .read_to_end(&mut out)
            .context("reading the signer's output")?;
        let mut err = String::new();
        let _ = child
            .stderr
            .take()
            .expect("piped stderr")
            .take(4096)
            .read_to_string(&mut err);
        let status = child.wait().context("waiting for the signer")?;
        let _ = writer.join();
        if !status.success() {
            return Err(usage(format!(
                "the signer {:?} failed ({status}): {}",
                self.command,
                err.trim()
            )));
        }
        let sig: [u8; 64] = out.as_slice().try_into().map_err(|_| {
            usage(format!(
                "the signer {:?} wrote {} bytes; it must write the raw 64-byte ed25519 signature and nothing else",
                self.command,
                out.len()
            ))
        })?;
        let check = ed25519_dalek::Signature::from_bytes(&sig);
        self.public
            .key
            .verify_strict(message, &check)
            .map_err(|_| {
                usage(format!(
                    "the signature from {:?} does not verify against {} (key {}): the command signs with another key, or not over its input",
                    self.command,
                    self.origin.display(),
                    self.public.id.short()
                ))
            })?;
        Ok(sig)
    }
}

/// The signers of one role: private key files (`--key`), then external
/// signers (`--signer`).
pub fn load(keys: &[PathBuf], signers: &[String]) -> Result<Vec<Box<dyn Signer>>> {
    let mut out: Vec<Box<dyn Signer>> = Vec::new();
    for k in keys {
        out.push(Box::new(read_private_key(k)?));
    }
    for s in signers {
        out.push(Box::new(CommandSigner::parse(s)?));
    }
    Ok(out)
}

/// Borrow a list of boxed signers as the format crate takes them.
pub fn refs(signers: &[Box<dyn Signer>]) -> Vec<&dyn Signer> {
    signers.iter().map(|s| s.as_ref()).collect()
}

/// Refuse two signers of one role that are the same key (one key counts
/// once toward a threshold).
pub fn distinct(signers: &[Box<dyn Signer>], role: &str) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for s in signers {
        if !seen.insert(s.key_id()) {
            return Err(usage(format!(
                "{role} key {} is given twice; a threshold counts distinct keys",
                s.key_id().short()
            )));
        }
    }
    Ok(())
}
