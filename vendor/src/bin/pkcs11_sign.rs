//! `updater-pkcs11-sign`: an external signer for `updater-vendor --signer`
//! that signs with an ed25519 key held in a PKCS#11 token (an HSM, a smart
//! card, SoftHSM2). It reads the bytes to sign on stdin and writes the raw
//! 64-byte signature on stdout; the key never leaves the token.
//!
//! Why not `pkcs11-tool --sign`: it feeds inputs over 1 KiB to the token in
//! parts (C_SignUpdate), and EdDSA (PureEdDSA, what DSSE signatures are) is
//! a single-part mechanism: tokens refuse it. Every real manifest and root
//! document is over 1 KiB. This signer makes one C_Sign over the whole
//! input.
//!
//! Usage: updater-pkcs11-sign --module LIB.so --token LABEL --id HEX
//!        [--pin-env VAR]   (the user PIN, from VAR: default PKCS11_PIN)

use std::io::{Read, Write};

use anyhow::{anyhow, bail, Context, Result};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

/// Largest input accepted: a root document or manifest envelope's PAE is
/// under the format's caps (1 MiB).
const MAX_INPUT: u64 = 2 * 1024 * 1024;

struct Args {
    module: String,
    token: String,
    id: Vec<u8>,
    pin_env: String,
}

fn args() -> Result<Args> {
    let mut module = None;
    let mut token = None;
    let mut id = None;
    let mut pin_env = "PKCS11_PIN".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--module" => module = Some(value()?),
            "--token" => token = Some(value()?),
            "--id" => id = Some(hex::decode(value()?).context("--id is hex")?),
            "--pin-env" => pin_env = value()?,
            "--help" | "-h" => {
                println!("usage: updater-pkcs11-sign --module LIB.so --token LABEL --id HEX [--pin-env VAR]\nReads the bytes to sign on stdin, writes the raw ed25519 signature on stdout.");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(Args {
        module: module.ok_or_else(|| anyhow!("--module LIB.so is required"))?,
        token: token.ok_or_else(|| anyhow!("--token LABEL is required"))?,
        id: id.ok_or_else(|| anyhow!("--id HEX is required"))?,
        pin_env,
    })
}

fn sign(a: &Args, message: &[u8]) -> Result<Vec<u8>> {
    let pkcs11 = Pkcs11::new(&a.module).with_context(|| format!("loading {}", a.module))?;
    pkcs11
        .initialize(CInitializeArgs::OsThreads)
        .context("C_Initialize")?;
    let slot = pkcs11
        .get_slots_with_token()?
        .into_iter()
        .find(|s| {
            pkcs11
                .get_token_info(*s)
                .map(|t| t.label().trim() == a.token)
                .unwrap_or(false)
        })
        .ok_or_else(|| anyhow!("no token labelled {:?} in {}", a.token, a.module))?;
    let session = pkcs11.open_ro_session(slot).context("C_OpenSession")?;
    let pin = std::env::var(&a.pin_env)
        .map_err(|_| anyhow!("the user PIN is read from ${}, which is not set", a.pin_env))?;
    session
        .login(UserType::User, Some(&AuthPin::new(pin)))
        .context("C_Login")?;
    let keys = session.find_objects(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Id(a.id.clone()),
    ])?;
    let key = match keys.as_slice() {
        [k] => *k,
        [] => bail!(
            "no private key with id {} on token {:?}",
            hex::encode(&a.id),
            a.token
        ),
        _ => bail!(
            "{} private keys with id {} on token {:?}",
            keys.len(),
            hex::encode(&a.id),
            a.token
        ),
    };
    // One C_Sign over the whole message: PureEdDSA.
    let sig = session
        .sign(&Mechanism::Eddsa, key, message)
        .context("C_Sign (CKM_EDDSA)")?;
    if sig.len() != 64 {
        bail!(
            "the token returned a {}-byte signature, not ed25519's 64",
            sig.len()
        );
    }
    Ok(sig)
}

fn main() {
    let run = || -> Result<()> {
        let a = args()?;
        let mut message = Vec::new();
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut message)
            .context("reading stdin")?;
        if message.len() as u64 > MAX_INPUT {
            bail!("the input is over {MAX_INPUT} bytes");
        }
        let sig = sign(&a, &message)?;
        std::io::stdout()
            .write_all(&sig)
            .context("writing the signature")?;
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("updater-pkcs11-sign: {e:#}");
        std::process::exit(1);
    }
}
