//! The checkpoint signing keys, kept outside the database whose tampering checkpoints reveal.
//!
//! A key folder (`audit.keys_dir`, default `data/keys`) holds:
//! - `<key_id>.key`: an Ed25519 secret key (64 hex characters), readable by the owner only;
//! - `<key_id>.pub`: the public half of a retired key, kept so that its checkpoints still verify;
//! - `active`: the id of the key that signs.
//!
//! On first start the folder is made and a key generated. A database written by an earlier
//! release kept its key in `signing_keys`: that key is moved into the folder as the active one
//! (so the checkpoints it signed keep verifying and its public key stays the same) and its
//! secret is erased from the database. `pricing audit rotate-key` makes a new active key; the
//! old one is retired to its `.pub` (its secret is deleted: it will never sign again). A running
//! service signs with the key that was active when it started, so restart it after a rotation.
//!
//! Instead of the folder's active key, `audit.signing_key` (`PRICING_AUDIT__SIGNING_KEY`, hex)
//! may give the key from a secret store; retired keys are still read from the folder. Every
//! replica must sign with the same key: share the folder (or the variable) between them.
//!
//! A checkpoint verifies only with a key in the ring, never with a key found in the database.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::config::Secret;
use crate::store::{Store, StoreError};

const ACTIVE: &str = "active";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the checkpoint key folder {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the checkpoint key {0} is not 32 bytes of hex")]
    Malformed(String),
    #[error("the checkpoint key folder names {0} as active, but {0}.key is missing")]
    MissingActive(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_owned(), source }
}

/// A key's id: the first 8 bytes of the SHA-256 of its public key, in hex.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&crate::domain::sha256(public.as_bytes())[..8])
}

/// The signing key and every key whose checkpoints verify.
pub struct KeyRing {
    pub active: SigningKey,
    pub active_id: String,
    /// Every known key by id, the active one included.
    pub verifying: Keys<VerifyingKey>,
}

fn parse_secret(text: &str, what: &str) -> Result<SigningKey, KeyError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| KeyError::Malformed(what.to_owned()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn parse_public(text: &str, what: &str) -> Result<VerifyingKey, KeyError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| KeyError::Malformed(what.to_owned()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Malformed(what.to_owned()))
}

fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system provides randomness");
    SigningKey::from_bytes(&seed)
}

/// Writes `contents` to a new file that only the owner may read; `false` when it exists.
fn create_private(path: &Path, contents: &str) -> Result<bool, KeyError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(contents.as_bytes()).and_then(|()| file.sync_all()).map_err(io(path))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

fn make_folder(dir: &Path) -> Result<(), KeyError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io(dir))
}

/// Stores `key` in the folder and makes it active, unless another process made a key active
/// first (replicas starting together): the id of the key that is active afterwards.
fn install_first(dir: &Path, key: &SigningKey) -> Result<String, KeyError> {
    let id = key_id(&key.verifying_key());
    create_private(&dir.join(format!("{id}.key")), &format!("{}\n", hex::encode(key.to_bytes())))?;
    if !create_private(&dir.join(ACTIVE), &format!("{id}\n"))? {
        let _ = fs::remove_file(dir.join(format!("{id}.key")));
        return read_active(dir)?.ok_or_else(|| KeyError::MissingActive(String::new()));
    }
    Ok(id)
}

fn read_active(dir: &Path) -> Result<Option<String>, KeyError> {
    let path = dir.join(ACTIVE);
    match fs::read_to_string(&path) {
        Ok(id) => Ok(Some(id.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Keys by id.
type Keys<K> = BTreeMap<String, K>;

/// Every key in the folder: secrets (`.key`) and retired public halves (`.pub`).
fn read_folder(dir: &Path) -> Result<(Keys<SigningKey>, Keys<VerifyingKey>), KeyError> {
    let mut secrets = BTreeMap::new();
    let mut publics = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((secrets, publics)),
        Err(e) => return Err(io(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension()) else {
            continue;
        };
        let text = || fs::read_to_string(&path).map_err(io(&path));
        if ext == "key" {
            let key = parse_secret(&text()?, stem)?;
            publics.insert(key_id(&key.verifying_key()), key.verifying_key());
            secrets.insert(key_id(&key.verifying_key()), key);
        } else if ext == "pub" {
            let public = parse_public(&text()?, stem)?;
            publics.insert(key_id(&public), public);
        }
    }
    Ok((secrets, publics))
}

impl KeyRing {
    /// The ring from `configured` (a key given in the settings) or the folder, made on first
    /// start: from the key an earlier release kept in the database, or a new one.
    pub async fn open(dir: &Path, configured: Option<&Secret>, store: &Store) -> Result<Self, KeyError> {
        let (mut secrets, mut verifying) = read_folder(dir)?;
        let legacy = store.legacy_signing_key().await?;
        if let Some(legacy) = &legacy {
            // Checkpoints signed with the database's key keep verifying either way.
            let key = parse_secret(&legacy.secret_key_hex, "in the database")?;
            verifying.insert(key_id(&key.verifying_key()), key.verifying_key());
        }
        let active = if let Some(secret) = configured {
            parse_secret(secret.expose(), "audit.signing_key")?
        } else {
            let id = match read_active(dir)? {
                Some(id) => id,
                None => {
                    make_folder(dir)?;
                    let first = match &legacy {
                        Some(legacy) => parse_secret(&legacy.secret_key_hex, "in the database")?,
                        None => generate(),
                    };
                    let id = install_first(dir, &first)?;
                    (secrets, verifying) = read_folder(dir)?;
                    id
                }
            };
            secrets.remove(&id).ok_or(KeyError::MissingActive(id))?
        };
        if let Some(legacy) = &legacy {
            // The key is outside the database now (or the database's key was retired by one
            // configured): its secret must not stay where an attacker who edits history finds it.
            if configured.is_some() {
                retire(dir, &parse_secret(&legacy.secret_key_hex, "in the database")?)?;
            }
            store.erase_legacy_signing_secret().await?;
        }
        let active_id = key_id(&active.verifying_key());
        verifying.insert(active_id.clone(), active.verifying_key());
        Ok(Self { active, active_id, verifying })
    }
}

/// Keeps `key`'s public half in the folder, so its checkpoints verify after it stops signing.
fn retire(dir: &Path, key: &SigningKey) -> Result<(), KeyError> {
    make_folder(dir)?;
    let id = key_id(&key.verifying_key());
    create_private(&dir.join(format!("{id}.pub")), &format!("{}\n", hex::encode(key.verifying_key().as_bytes())))?;
    Ok(())
}

/// Makes a new active key in the folder and retires the old one (its secret is deleted, its
/// public half kept): the new key's id.
pub fn rotate(dir: &Path) -> Result<String, KeyError> {
    make_folder(dir)?;
    let (secrets, _) = read_folder(dir)?;
    let old = read_active(dir)?;
    let new = generate();
    let id = key_id(&new.verifying_key());
    create_private(&dir.join(format!("{id}.key")), &format!("{}\n", hex::encode(new.to_bytes())))?;
    // `active` is replaced atomically: a process starting meanwhile reads the old or the new.
    let staged = dir.join(format!("{ACTIVE}.{id}"));
    create_private(&staged, &format!("{id}\n"))?;
    fs::rename(&staged, dir.join(ACTIVE)).map_err(io(dir))?;
    if let Some(old) = old.and_then(|old| secrets.get(&old).cloned()) {
        retire(dir, &old)?;
        let old_id = key_id(&old.verifying_key());
        fs::remove_file(dir.join(format!("{old_id}.key"))).map_err(io(dir))?;
    }
    Ok(id)
}
