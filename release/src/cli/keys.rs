//! `updater-vendor keygen` and `updater-vendor keyring`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;

use super::print_json;

/// Arguments of `updater-vendor keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Folder for the key files (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Base name: writes NAME.key (mode 0600) and NAME.pub.
    #[arg(long, default_value = "release")]
    pub name: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `updater-vendor keyring` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyringCommand {
    /// Create a keyring folder from public keys (format in keys/README.md).
    #[command(after_help = super::EXIT_CODES)]
    Init(KeyringInitArgs),
}

/// Arguments of `updater-vendor keyring init`.
#[derive(Debug, Args)]
pub struct KeyringInitArgs {
    /// The keyring folder to create.
    pub dir: PathBuf,
    /// A public key trusted to sign manifests (repeat for several).
    #[arg(long = "manifest-key", required = true)]
    pub manifest_keys: Vec<PathBuf>,
    /// Distinct manifest keys that must sign.
    #[arg(long, default_value_t = 1)]
    pub manifest_threshold: usize,
    /// A public key trusted to sign kernels (repeat for several).
    #[arg(long = "kernel-key", required = true)]
    pub kernel_keys: Vec<PathBuf>,
    /// Distinct kernel keys that must sign.
    #[arg(long, default_value_t = 1)]
    pub kernel_threshold: usize,
    /// A public key trusted to sign channel documents (repeat for several;
    /// needed by `updater daemon` and `updater check`).
    #[arg(long = "channel-key")]
    pub channel_keys: Vec<PathBuf>,
    /// Distinct channel keys that must sign.
    #[arg(long, default_value_t = 1)]
    pub channel_threshold: usize,
    /// A root key (repeat for several; kept offline): the keyring becomes
    /// root version 1 and devices follow the root versions published
    /// beside releases and channels.
    #[arg(long = "root-key")]
    pub root_keys: Vec<PathBuf>,
    /// Distinct root keys that must sign the next root version.
    #[arg(long, default_value_t = 1)]
    pub root_threshold: usize,
}

pub(super) fn keygen(a: KeygenArgs) -> Result<()> {
    let (key, priv_path, pub_path) = crate::keys::keygen(&a.out, &a.name)?;
    if a.json {
        print_json(&json!({
            "keyid": key.id.as_str(),
            "private": priv_path,
            "public": pub_path,
        }));
    } else {
        crate::say!("private key: {} (keep it secret)", priv_path.display());
        crate::say!("public key:  {}", pub_path.display());
        crate::say!("key id:      {}", key.id);
    }
    Ok(())
}

pub(super) fn keyring(c: KeyringCommand) -> Result<()> {
    match c {
        KeyringCommand::Init(a) => {
            use crate::keys::RoleInit;
            crate::keys::keyring_init(
                &a.dir,
                RoleInit {
                    keys: &a.manifest_keys,
                    threshold: a.manifest_threshold,
                },
                RoleInit {
                    keys: &a.kernel_keys,
                    threshold: a.kernel_threshold,
                },
                RoleInit {
                    keys: &a.channel_keys,
                    threshold: a.channel_threshold,
                },
                RoleInit {
                    keys: &a.root_keys,
                    threshold: a.root_threshold,
                },
            )?;
            crate::say!(
                "keyring {}: {} manifest key(s), threshold {}; {} kernel key(s), threshold {}{}",
                a.dir.display(),
                a.manifest_keys.len(),
                a.manifest_threshold,
                a.kernel_keys.len(),
                a.kernel_threshold,
                if a.channel_keys.is_empty() {
                    "; no channel keys".to_string()
                } else {
                    format!(
                        "; {} channel key(s), threshold {}",
                        a.channel_keys.len(),
                        a.channel_threshold
                    )
                }
            );
            if !a.root_keys.is_empty() {
                crate::say!(
                    "root version 1: {} root key(s), threshold {}",
                    a.root_keys.len(),
                    a.root_threshold
                );
            }
            Ok(())
        }
    }
}
