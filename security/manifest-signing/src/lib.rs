//! Signed app manifests. A manifest — a workspace file, or one record of an FDC3 App
//! Directory — carries its signature inside itself, at a fixed place
//! ([`WORKSPACE_SIGNATURE`], [`RECORD_SIGNATURE`]):
//!
//! ```json
//! "signature": {"alg": "ed25519", "publicKey": "<base64>", "value": "<base64>"}
//! ```
//!
//! The signed bytes are [`DOMAIN`] followed by the RFC 8785 canonical form (JCS) of the
//! manifest with the signature removed, so re-indenting, reordering keys or re-escaping
//! strings keeps a signature valid, while any change of a value breaks it.
//!
//! This crate answers "who signed this, if anyone, and is it intact"; whether that
//! signer is trusted is the desktop owner's policy, and the shell decides.

use std::{fmt, str::FromStr};

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Value, json};

/// Where a workspace file's signature is.
pub const WORKSPACE_SIGNATURE: &[&str] = &["signature"];
/// Where an App Directory record's signature is.
pub const RECORD_SIGNATURE: &[&str] = &["hostManifests", "weft", "signature"];
/// Prefixed to the canonical bytes, so that a signature made for a manifest means
/// nothing anywhere else.
pub const DOMAIN: &[u8] = b"weft-manifest-v1\0";

const PUBLIC_PREFIX: &str = "ed25519:";
const SECRET_PREFIX: &str = "weft-ed25519-secret:";

/// A publisher's public key, written `ed25519:<base64>`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublisherKey(VerifyingKey);

/// A publisher's signing key, written `weft-ed25519-secret:<base64 seed>`.
pub struct SecretKey(SigningKey);

/// What a manifest's signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// It has none.
    Unsigned,
    /// It has one, and it does not hold: why.
    Invalid(String),
    /// It is intact and signed by this key.
    Signed(PublisherKey),
}

impl fmt::Display for SignatureCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureCheck::Unsigned => f.write_str("not signed"),
            SignatureCheck::Invalid(why) => write!(f, "its signature is invalid: {why}"),
            SignatureCheck::Signed(key) => write!(f, "signed by {key}"),
        }
    }
}

/// A key or manifest that cannot be used for signing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    /// Key text that does not read.
    #[error("not a key: {0}")]
    BadKey(String),
    /// The manifest is not a JSON object where the signature goes.
    #[error("the manifest has no object at {0} to hold the signature")]
    NoPlace(String),
    /// The manifest cannot be put in canonical form.
    #[error("the manifest cannot be canonicalised: {0}")]
    Canonical(String),
}

impl PublisherKey {
    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Display for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublisherKey {
    type Err = SigningError;

    fn from_str(text: &str) -> Result<Self, SigningError> {
        let b64 = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(|| {
            SigningError::BadKey(format!("a public key starts with {PUBLIC_PREFIX}"))
        })?;
        public_from_base64(b64)
    }
}

fn public_from_base64(b64: &str) -> Result<PublisherKey, SigningError> {
    let bytes: [u8; 32] = STANDARD
        .decode(b64)
        .map_err(|e| SigningError::BadKey(e.to_string()))?
        .try_into()
        .map_err(|_| SigningError::BadKey("an ed25519 public key is 32 bytes".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map(PublisherKey)
        .map_err(|e| SigningError::BadKey(e.to_string()))
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source");
        SecretKey(SigningKey::from_bytes(&seed))
    }

    /// Its public half.
    pub fn public(&self) -> PublisherKey {
        PublisherKey(self.0.verifying_key())
    }

    /// The key as text, for its file.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", STANDARD.encode(self.0.to_bytes()))
    }

    /// Reads a key written by [`SecretKey::to_text`].
    pub fn from_text(text: &str) -> Result<SecretKey, SigningError> {
        let b64 = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            SigningError::BadKey(format!("a signing key starts with {SECRET_PREFIX}"))
        })?;
        let seed: [u8; 32] = STANDARD
            .decode(b64)
            .map_err(|e| SigningError::BadKey(e.to_string()))?
            .try_into()
            .map_err(|_| SigningError::BadKey("an ed25519 signing key is 32 bytes".into()))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }
}

/// The bytes a signature covers: [`DOMAIN`] and the canonical form of `manifest`
/// without the member at `at`.
fn signed_bytes(manifest: &Value, at: &[&str]) -> Result<Vec<u8>, SigningError> {
    let mut unsigned = manifest.clone();
    if let Some((last, parents)) = at.split_last()
        && let Some(Value::Object(holder)) = walk(&mut unsigned, parents)
    {
        holder.remove(*last);
    }
    let canonical = serde_json_canonicalizer::to_vec(&unsigned)
        .map_err(|e| SigningError::Canonical(e.to_string()))?;
    let mut bytes = DOMAIN.to_vec();
    bytes.extend_from_slice(&canonical);
    Ok(bytes)
}

fn walk<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, key| v.get_mut(*key))
}

/// Signs `manifest` with `key`, putting (or replacing) the signature at `at`; the
/// objects on the way are created when missing.
pub fn sign(manifest: &mut Value, at: &[&str], key: &SecretKey) -> Result<(), SigningError> {
    let (last, parents) = at.split_last().expect("a signature place is not empty");
    // The objects holding the signature are made first: they are part of what is signed.
    let mut holder = &mut *manifest;
    for (depth, name) in parents.iter().enumerate() {
        let object = holder
            .as_object_mut()
            .ok_or_else(|| SigningError::NoPlace(at[..depth].join(".")))?;
        holder = object.entry(*name).or_insert_with(|| json!({}));
    }
    if !holder.is_object() {
        return Err(SigningError::NoPlace(parents.join(".")));
    }
    let signature = key.0.sign(&signed_bytes(manifest, at)?);
    let holder = walk(manifest, parents).and_then(Value::as_object_mut);
    let holder = holder.expect("made above");
    holder.insert(
        (*last).to_owned(),
        json!({
            "alg": "ed25519",
            "publicKey": STANDARD.encode(key.0.verifying_key().as_bytes()),
            "value": STANDARD.encode(signature.to_bytes()),
        }),
    );
    Ok(())
}

/// Checks the signature of `manifest` at `at`.
pub fn check(manifest: &Value, at: &[&str]) -> SignatureCheck {
    let Some(signature) = at.iter().try_fold(manifest, |v, key| v.get(*key)) else {
        return SignatureCheck::Unsigned;
    };
    let invalid = |why: &str| SignatureCheck::Invalid(why.to_owned());
    let field = |name: &str| signature.get(name).and_then(Value::as_str);
    if field("alg") != Some("ed25519") {
        return invalid("`alg` is not \"ed25519\"");
    }
    let Some(key) = field("publicKey").and_then(|k| public_from_base64(k).ok()) else {
        return invalid("`publicKey` is not an ed25519 public key in base64");
    };
    let Some(value) = field("value")
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| <[u8; 64]>::try_from(v).ok())
    else {
        return invalid("`value` is not an ed25519 signature in base64");
    };
    let Ok(bytes) = signed_bytes(manifest, at) else {
        return invalid("the manifest cannot be canonicalised");
    };
    match key.0.verify(&bytes, &Signature::from_bytes(&value)) {
        Ok(()) => SignatureCheck::Signed(key),
        Err(_) => invalid(&format!(
            "it does not match the content (changed after signing, or not signed by {key})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn workspace() -> Value {
        json!({"name": "Desk", "apps": [{"appId": "blotter", "url": "https://b.example/", "title": "Blotter ü"}]})
    }

    #[test]
    fn a_signature_survives_reformatting_but_not_a_changed_value() {
        let key = SecretKey::generate();
        let mut ws = workspace();
        assert_eq!(check(&ws, WORKSPACE_SIGNATURE), SignatureCheck::Unsigned);
        sign(&mut ws, WORKSPACE_SIGNATURE, &key).unwrap();
        assert_eq!(
            check(&ws, WORKSPACE_SIGNATURE),
            SignatureCheck::Signed(key.public())
        );

        // Pretty-printed, keys in another order, a character escaped: still valid.
        let pretty = serde_json::to_string_pretty(&ws)
            .unwrap()
            .replace('ü', "\\u00fc");
        let mut reordered: Value = serde_json::from_str(&pretty).unwrap();
        let apps = reordered["apps"].take();
        reordered
            .as_object_mut()
            .unwrap()
            .insert("apps".into(), apps);
        assert_eq!(
            check(&reordered, WORKSPACE_SIGNATURE),
            SignatureCheck::Signed(key.public())
        );

        let mut changed = ws.clone();
        changed["apps"][0]["url"] = json!("https://evil.example/");
        assert!(matches!(
            check(&changed, WORKSPACE_SIGNATURE),
            SignatureCheck::Invalid(_)
        ));
    }

    #[test]
    fn another_key_swapped_in_does_not_verify_and_broken_fields_are_named() {
        let (key, other) = (SecretKey::generate(), SecretKey::generate());
        let mut ws = workspace();
        sign(&mut ws, WORKSPACE_SIGNATURE, &key).unwrap();
        let mut swapped = ws.clone();
        swapped["signature"]["publicKey"] = json!(STANDARD.encode(other.public().to_bytes()));
        assert!(matches!(
            check(&swapped, WORKSPACE_SIGNATURE),
            SignatureCheck::Invalid(_)
        ));
        let mut bad = ws.clone();
        bad["signature"]["alg"] = json!("rsa");
        assert_eq!(
            check(&bad, WORKSPACE_SIGNATURE),
            SignatureCheck::Invalid("`alg` is not \"ed25519\"".into())
        );
        bad = ws;
        bad["signature"]["value"] = json!("AAAA");
        assert!(
            check(&bad, WORKSPACE_SIGNATURE)
                .to_string()
                .contains("`value`")
        );
    }

    #[test]
    fn records_are_signed_inside_their_weft_host_manifest() {
        let key = SecretKey::generate();
        let mut record =
            json!({"appId": "news", "type": "web", "details": {"url": "https://n.example/"}});
        sign(&mut record, RECORD_SIGNATURE, &key).unwrap();
        assert!(record["hostManifests"]["weft"]["signature"].is_object());
        assert_eq!(
            check(&record, RECORD_SIGNATURE),
            SignatureCheck::Signed(key.public())
        );
        record["hostManifests"]["weft"]["restart"] = json!("always");
        assert!(matches!(
            check(&record, RECORD_SIGNATURE),
            SignatureCheck::Invalid(_)
        ));
        let mut not_object = json!({"appId": "x", "hostManifests": []});
        assert_eq!(
            sign(&mut not_object, RECORD_SIGNATURE, &key),
            Err(SigningError::NoPlace("hostManifests".into()))
        );
    }

    #[test]
    fn keys_round_trip_as_text_and_bad_text_is_refused() {
        let key = SecretKey::generate();
        let again = SecretKey::from_text(&key.to_text()).unwrap();
        assert_eq!(again.public(), key.public());
        let public: PublisherKey = key.public().to_string().parse().unwrap();
        assert_eq!(public, key.public());
        assert!("ed25519:AAAA".parse::<PublisherKey>().is_err());
        assert!("rsa:abc".parse::<PublisherKey>().is_err());
        assert!(SecretKey::from_text("weft-ed25519-secret:!!").is_err());
    }

    proptest! {
        /// Any JSON given to the checker, as a signature or around one, is answered
        /// without panicking.
        #[test]
        fn checking_arbitrary_json_never_panics(text in "\\PC{0,200}") {
            if let Ok(value) = serde_json::from_str::<Value>(&text) {
                let _ = check(&value, WORKSPACE_SIGNATURE);
                let _ = check(&json!({"signature": value.clone()}), WORKSPACE_SIGNATURE);
                let _ = check(&value, RECORD_SIGNATURE);
            }
        }
    }
}
