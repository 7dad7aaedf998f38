//! The built-in handlers' packaged artifacts.
//!
//! `make handlers` writes one zip holding one `bootstrap` executable for
//! Lambda's `provided.al2023` runtime that serves every built-in handler
//! (the function's `Handler` setting names which), and a `manifest.json`
//! with the zip's name, SHA-256 and size and the handlers it serves. The
//! operator reads only the manifest and the zip; it never links the
//! handlers crate. The SHA-256 is what detects a code
//! change: Lambda does not echo the code's location back, but it does report
//! `CodeSha256`, which is the base64 of the same digest.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use base64::Engine;
use serde::Deserialize;

/// One packaged handler: the zip that serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Handler name, e.g. `s3-json-transform`.
    pub name: String,
    /// Zip file name, relative to the manifest.
    pub zip: String,
    /// Hex SHA-256 of the zip.
    pub sha256: String,
    /// Size of the zip in bytes.
    pub size: u64,
    /// Directory of the manifest.
    pub dir: PathBuf,
    /// Lambda architecture the zip was built for (`x86_64` or `arm64`).
    pub architecture: String,
    /// Environment variables the handler requires → the pipeline edge that
    /// provides each (from the manifest).
    pub required_env: BTreeMap<String, String>,
}

/// The edge a requirement's hint names (`uses: {eventBus: <bus>, access:
/// put, env: EVENT_BUS}`): its kind (`eventBus`) and access (`put`).
pub fn edge_need(hint: &str) -> Option<(String, String)> {
    let inner = hint.trim().strip_prefix("uses:")?.trim();
    let inner = inner.strip_prefix('{')?.strip_suffix('}')?;
    let mut kind = None;
    let mut access = None;
    for part in inner.split(',') {
        let (key, value) = part.split_once(':')?;
        let (key, value) = (key.trim(), value.trim());
        match key {
            "access" => access = Some(value.to_owned()),
            "env" => {}
            other => kind = Some(other.to_owned()),
        }
    }
    Some((kind?, access?))
}

/// A hex SHA-256 as Lambda reports a zip's `CodeSha256` (base64 of the
/// digest's bytes); text that is not hex is returned as it is.
pub fn hex_to_base64(hex_digest: &str) -> String {
    match hex::decode(hex_digest) {
        Ok(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => hex_digest.to_owned(),
    }
}

impl Artifact {
    /// The digest as Lambda reports `CodeSha256` (base64).
    pub fn code_sha256(&self) -> String {
        hex_to_base64(&self.sha256)
    }

    /// Reads the zip and checks it against the manifest, so a zip replaced
    /// behind the manifest's back is never deployed under the wrong digest.
    pub fn read_zip(&self) -> Result<Vec<u8>, String> {
        let path = self.dir.join(&self.zip);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let digest = sha256_hex(&bytes);
        if digest != self.sha256 {
            return Err(format!(
                "{} has SHA-256 {digest} but the manifest says {}: rebuild with `make handlers`",
                path.display(),
                self.sha256
            ));
        }
        Ok(bytes)
    }
}

/// Hex SHA-256 of some bytes, as the manifest records it.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

#[derive(Deserialize)]
struct Manifest {
    architecture: String,
    zip: String,
    sha256: String,
    size: u64,
    handlers: Vec<String>,
    #[serde(default)]
    requirements: BTreeMap<String, Requirements>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Requirements {
    #[serde(default)]
    required_env: BTreeMap<String, String>,
}

/// Every built-in handler the operator can deploy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    handlers: BTreeMap<String, Artifact>,
}

impl Catalog {
    /// Reads `manifest.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let path = dir.join("manifest.json");
        let raw = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {}: {e} (run `make handlers`, or set SLUICE_HANDLERS_DIR)",
                path.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| format!("{} is not a handler manifest: {e}", path.display()))?;
        if !["x86_64", "arm64"].contains(&manifest.architecture.as_str()) {
            return Err(format!(
                "{}: architecture {:?} is not one Lambda runs (x86_64 or arm64)",
                path.display(),
                manifest.architecture
            ));
        }
        let handlers = manifest
            .handlers
            .iter()
            .map(|name| {
                let artifact = Artifact {
                    name: name.clone(),
                    zip: manifest.zip.clone(),
                    sha256: manifest.sha256.clone(),
                    size: manifest.size,
                    dir: dir.to_owned(),
                    architecture: manifest.architecture.clone(),
                    required_env: manifest
                        .requirements
                        .get(name)
                        .map(|r| r.required_env.clone())
                        .unwrap_or_default(),
                };
                (name.clone(), artifact)
            })
            .collect();
        Ok(Catalog { handlers })
    }

    /// A catalog of the given artifacts, for tests and tools.
    pub fn from_artifacts(artifacts: Vec<Artifact>) -> Self {
        Catalog {
            handlers: artifacts.into_iter().map(|a| (a.name.clone(), a)).collect(),
        }
    }

    /// Every built-in handler with the requirements the handlers crate
    /// declares (`handlers/requirements.json`, compiled in), but no built
    /// zip: what planning needs offline (`kubectl sluice`, tests), where
    /// the code's digest is unknown and reads as zeros.
    pub fn declared() -> Self {
        let requirements: BTreeMap<String, Requirements> =
            serde_json::from_str(include_str!("../../handlers/requirements.json"))
                .unwrap_or_default();
        let artifacts = requirements
            .into_iter()
            .map(|(name, r)| Artifact {
                name,
                zip: "sluice-handlers.zip".into(),
                sha256: "00".repeat(32),
                size: 0,
                dir: PathBuf::new(),
                architecture: "x86_64".into(),
                required_env: r.required_env,
            })
            .collect();
        Catalog::from_artifacts(artifacts)
    }

    /// The artifact of a handler.
    pub fn get(&self, name: &str) -> Option<&Artifact> {
        self.handlers.get(name)
    }

    /// Handler names, for error messages.
    pub fn names(&self) -> Vec<&str> {
        self.handlers.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_sha256_is_base64_of_the_hex_digest() {
        let a = Artifact {
            name: "x".into(),
            zip: "x.zip".into(),
            // sha256("")
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            size: 0,
            dir: PathBuf::new(),
            architecture: "x86_64".into(),
            required_env: BTreeMap::new(),
        };
        assert_eq!(
            a.code_sha256(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn the_declared_catalog_holds_every_handler_and_its_requirements() {
        let c = Catalog::declared();
        assert!(c.names().len() >= 10, "{:?}", c.names());
        let router = c.get("router").expect("router is built in");
        assert_eq!(
            router.required_env.get("EVENT_BUS").map(String::as_str),
            Some("uses: {eventBus: <bus>, access: put, env: EVENT_BUS}")
        );
    }

    #[test]
    fn a_zip_that_does_not_match_its_manifest_is_refused() {
        let dir = std::env::temp_dir().join(format!("sluice-artifacts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("x.zip"), b"changed").expect("write");
        let a = Artifact {
            name: "x".into(),
            zip: "x.zip".into(),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            size: 0,
            dir: dir.clone(),
            architecture: "x86_64".into(),
            required_env: BTreeMap::new(),
        };
        let err = a.read_zip().expect_err("digest mismatch");
        assert!(err.contains("manifest says"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_manifest_names_the_architecture_and_the_handlers_of_its_zip() {
        let dir = std::env::temp_dir().join(format!("sluice-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let manifest = |arch: &str| {
            format!(
                r#"{{"architecture": "{arch}", "zip": "h.zip", "sha256": "00", "size": 1, "handlers": ["x", "y"],
                    "requirements": {{"x": {{"requiredEnv": {{"OUT": "uses: ..."}}}}}}}}"#
            )
        };
        std::fs::write(dir.join("manifest.json"), manifest("arm64")).expect("write");
        let catalog = Catalog::load(&dir).expect("loads");
        assert_eq!(catalog.get("x").expect("x").architecture, "arm64");
        assert_eq!(catalog.get("x").expect("x").dir, dir);
        // One zip serves every handler.
        assert_eq!(catalog.get("y").expect("y").zip, "h.zip");
        assert_eq!(
            catalog
                .get("x")
                .expect("x")
                .required_env
                .get("OUT")
                .map(String::as_str),
            Some("uses: ...")
        );
        assert!(catalog.get("y").expect("y").required_env.is_empty());
        assert_eq!(catalog.names(), ["x", "y"]);
        std::fs::write(dir.join("manifest.json"), manifest("sparc")).expect("write");
        let err = Catalog::load(&dir).expect_err("not a Lambda architecture");
        assert!(err.contains("x86_64 or arm64"), "{err}");
        std::fs::remove_dir_all(dir).ok();
    }
}
