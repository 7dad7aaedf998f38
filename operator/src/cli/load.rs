//! Reading manifests as `kubectl apply -f` does: files, directories of
//! `.yaml`/`.yml`/`.json` files (not recursive), standard input, several
//! YAML documents per file and `List` objects.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One object of a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Where it came from: `file.yaml` or `file.yaml#2` (the document's
    /// position, from 1, when a file holds several).
    pub source: String,
    /// The object as written.
    pub object: Value,
}

impl Manifest {
    /// `apiVersion`/`kind`.
    pub fn kind(&self) -> (&str, &str) {
        (
            self.object["apiVersion"].as_str().unwrap_or(""),
            self.object["kind"].as_str().unwrap_or(""),
        )
    }

    /// Whether it is a Sluice object of `kind`.
    pub fn is(&self, kind: &str) -> bool {
        let (api_version, k) = self.kind();
        k == kind && api_version.split('/').next() == Some(crate::crd::GROUP)
    }
}

/// Every object of the given files and directories, in order.
pub fn read(paths: &[PathBuf]) -> Result<Vec<Manifest>, String> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| format!("standard input: {e}"))?;
            out.extend(parse("<stdin>", &text)?);
        } else if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_manifest(p))
                .collect();
            files.sort();
            for file in files {
                out.extend(read_file(&file)?);
            }
        } else {
            out.extend(read_file(path)?);
        }
    }
    Ok(out)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn read_file(path: &Path) -> Result<Vec<Manifest>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&path.display().to_string(), &text)
}

/// The objects of one file's text.
pub fn parse(name: &str, text: &str) -> Result<Vec<Manifest>, String> {
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| format!("{name}: document {}: not YAML or JSON: {e}", i + 1))?;
        if value.is_null() {
            continue;
        }
        if !value.is_object() {
            return Err(format!(
                "{name}: document {}: expected a Kubernetes object, found {}",
                i + 1,
                kind_of(&value)
            ));
        }
        if value["kind"] == "List" {
            for item in value["items"].as_array().into_iter().flatten() {
                docs.push(item.clone());
            }
        } else {
            docs.push(value);
        }
    }
    let several = docs.len() > 1;
    Ok(docs
        .into_iter()
        .enumerate()
        .map(|(i, object)| Manifest {
            source: if several {
                format!("{name}#{}", i + 1)
            } else {
                name.to_owned()
            },
            object,
        })
        .collect())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_documents_and_lists_are_each_an_object() {
        let text = "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: a}\n---\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: sluice.dev/v1alpha1, kind: SluicePolicy, metadata: {name: p}}\n";
        let m = parse("x.yaml", text).expect("parses");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].source, "x.yaml#1");
        assert!(m[0].is("DataPipeline"));
        assert!(m[1].is("SluicePolicy"));
        assert!(!m[1].is("DataPipeline"));
    }

    #[test]
    fn text_that_is_not_an_object_is_named() {
        let e = parse("x.yaml", "- a\n- b\n").expect_err("a list is not an object");
        assert!(e.contains("x.yaml: document 1"), "{e}");
        assert!(e.contains("a list"), "{e}");
    }
}
