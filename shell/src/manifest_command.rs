//! `weft manifest keygen|sign|verify`: the publisher's side of signed manifests (see
//! `weft-manifest-signing`). A file with an `applications` array is an App Directory
//! and each record is a manifest; any other JSON object is a workspace file.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use serde_json::Value;
use weft_manifest_signing::{
    PublisherKey, RECORD_SIGNATURE, SecretKey, SignatureCheck, WORKSPACE_SIGNATURE, check, sign,
};

use crate::config::Config;

/// `weft manifest keygen`.
pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let key = SecretKey::generate();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("creating {} (it must not exist yet)", out.display()))?;
    file.write_all(key.to_text().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    let public = public_file(out);
    fs::write(&public, format!("{}\n", key.public()))
        .with_context(|| format!("writing {}", public.display()))?;
    println!(
        "signing key: {} (keep it offline; mode 0600)",
        out.display()
    );
    println!("public key:  {} ({})", key.public(), public.display());
    println!(
        "trust it with: [manifests] trusted_keys = [\"{}\"]",
        key.public()
    );
    Ok(ExitCode::SUCCESS)
}

fn public_file(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The manifests of a file: (what, where its signature goes, path to it in the file).
fn manifests(document: &Value) -> Vec<(String, &'static [&'static str], Option<usize>)> {
    match document.get("applications").and_then(Value::as_array) {
        Some(records) => records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let id = r.get("appId").and_then(Value::as_str).unwrap_or("?");
                (format!("record {id}"), RECORD_SIGNATURE, Some(i))
            })
            .collect(),
        None => vec![("workspace".to_owned(), WORKSPACE_SIGNATURE, None)],
    }
}

fn read(file: &Path) -> anyhow::Result<Value> {
    let text = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let value: Value =
        serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    if !value.is_object() {
        bail!("{} is not a JSON object", file.display());
    }
    Ok(value)
}

/// `weft manifest sign`.
pub fn sign_file(file: &Path, key_file: &Path, only: &[String]) -> anyhow::Result<ExitCode> {
    let key_text =
        fs::read_to_string(key_file).with_context(|| format!("reading {}", key_file.display()))?;
    let key = SecretKey::from_text(&key_text).with_context(|| format!("{}", key_file.display()))?;
    let mut document = read(file)?;
    let mut signed = Vec::new();
    for (what, at, index) in manifests(&document) {
        let manifest = match index {
            Some(i) => &mut document["applications"][i],
            None => &mut document,
        };
        let app_id = manifest
            .get("appId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if index.is_some() && !only.is_empty() && !app_id.is_some_and(|id| only.contains(&id)) {
            continue;
        }
        sign(manifest, at, &key).with_context(|| format!("signing the {what}"))?;
        signed.push(what);
    }
    if signed.is_empty() {
        bail!("no record of {} has the appIds {only:?}", file.display());
    }
    let tmp = file.with_extension("signing");
    fs::write(&tmp, serde_json::to_string_pretty(&document)? + "\n")
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))?;
    println!(
        "signed {} with {}: {}",
        file.display(),
        key.public(),
        signed.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `weft manifest verify`.
pub fn verify(
    config_file: Option<&Path>,
    file: &Path,
    trust: &[String],
) -> anyhow::Result<ExitCode> {
    let policy = Config::load_user(config_file)?.policy_in_force;
    let mut trusted: Vec<(PublisherKey, &str)> = policy
        .trusted_keys
        .iter()
        .map(|k| (*k, "by the policy"))
        .collect();
    for text in trust {
        let key: PublisherKey = text.parse().with_context(|| format!("--trust {text}"))?;
        trusted.push((key, "on the command line"));
    }
    let document = read(file)?;
    let mut good = true;
    for (what, at, index) in manifests(&document) {
        let manifest = index.map_or(&document, |i| &document["applications"][i]);
        let verdict = match check(manifest, at) {
            SignatureCheck::Signed(key) => match trusted.iter().find(|(k, _)| *k == key) {
                Some((_, by)) => format!("signed by {key}, trusted {by}"),
                None if trusted.is_empty() => {
                    format!("signed by {key} (intact; no key is trusted to judge it by)")
                }
                None => {
                    good = false;
                    format!("signed by {key}, which is NOT trusted")
                }
            },
            other => {
                good = false;
                other.to_string()
            }
        };
        println!("{}: {what}: {verdict}", file.display());
    }
    Ok(if good {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
