//! Offline admission: what the kube-apiserver checks when a custom
//! resource is created, from its CRD alone, with the API server's words.
//! `kubectl sluice validate` uses it to refuse, without a cluster, what
//! `kubectl apply` would be refused.
//!
//! In the API server's order:
//! 1. the schema's `default`s are applied, and nulls of non-nullable
//!    fields defaulted or dropped ([`schema::apply_defaults`]);
//! 2. fields the schema does not declare are refused as strict field
//!    validation (kubectl's default) refuses them, `unknown field
//!    "spec.foo"`, and nothing else is checked (the API server fails the
//!    decoding);
//! 3. `metadata.name` is checked (present, an RFC 1123 subdomain);
//! 4. the OpenAPI value validations (type, nullable, int-or-string,
//!    required, enum, pattern, min/maxLength in characters,
//!    minimum/maximum/exclusive, multipleOf, min/maxItems,
//!    min/maxProperties, additionalProperties, allOf), worded as
//!    kube-openapi and `kubeOpenAPIResultToFieldErrors` word them;
//! 5. `x-kubernetes-list-type` `map` keys and `set` elements are unique;
//! 6. the CEL `x-kubernetes-validations` rules ([`cel`]) — unless one of
//!    the errors before is of a kind that blocks them (unsupported value,
//!    required, too long, too many, wrong type), as the API server's
//!    custom resource strategy skips them then, saying so.
//!
//! Not reproduced: `format` checks (the CRD's only format beside
//! int32/int64 is `date-time` in the status), `anyOf`/`oneOf`/`not`
//! (absent from Sluice's CRD), embedded resources, rules with
//! `optionalOldSelf` (skipped with the other transition rules), the CEL
//! cost budget, and Kubernetes' CEL extension libraries beyond CEL's
//! standard one (`lowerAscii`, `split`, `url`, `quantity`... are
//! refused as undeclared, reported as an error of the rule).

mod cel;
mod field;
mod schema;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use field::{FieldError, Kind};

/// The API server's admission of one object on its CREATE, against the
/// schema of the CRD version its `apiVersion` names, offline.
///
/// Returns the object as it would be stored (its schema defaults applied),
/// or every error, each worded like the API server's field errors
/// (`spec.functions[0].memoryMiB: Invalid value: 64:
/// spec.functions[0].memoryMiB in body should be greater than or equal to
/// 128`, `spec.queues[1]: Duplicate value: {"name":"a"}`, `spec: Invalid
/// value: "object": <rule message>`,
/// `unknown field "spec.foo"`).
pub fn admit(crd: &CustomResourceDefinition, object: &Value) -> Result<Value, Vec<String>> {
    let group = &crd.spec.group;
    let kind = &crd.spec.names.kind;
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = api_version
        .strip_prefix(group.as_str())
        .and_then(|v| v.strip_prefix('/'))
        .and_then(|v| crd.spec.versions.iter().find(|x| x.name == v && x.served));
    let Some(version) = version else {
        return Err(vec![format!(
            "no matches for kind {kind:?} in version {api_version:?}"
        )]);
    };
    let object_kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if object_kind != kind {
        return Err(vec![format!(
            "kind {object_kind:?} is not {kind:?}, the kind of {}",
            crd.metadata.name.as_deref().unwrap_or(group)
        )]);
    }
    let mut object = object.clone();
    let Some(root) = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
    else {
        return Ok(object);
    };

    schema::apply_defaults(root, &mut object);
    let mut unknown = Vec::new();
    schema::unknown_fields(root, &object, "", &mut unknown);
    if !unknown.is_empty() {
        return Err(unknown);
    }

    let mut errors = metadata_errors(&object);
    schema::Validator::default().validate(root, &object, "", &mut errors);
    schema::list_types(root, &object, "", &mut errors);
    if errors.iter().any(|e| e.kind.blocks_rules()) {
        errors.push(FieldError::new(
            "<nil>",
            Kind::Invalid,
            Some(Value::Null),
            "some validation rules were not checked because the object was invalid; \
             correct the existing errors to complete validation"
                .into(),
        ));
    } else {
        cel::Rules::default().validate(root, &object, "", &mut errors);
    }
    if errors.is_empty() {
        Ok(object)
    } else {
        Err(errors.iter().map(ToString::to_string).collect())
    }
}

/// `metadata.name`: required (or `generateName`), an RFC 1123 subdomain.
fn metadata_errors(object: &Value) -> Vec<FieldError> {
    let meta = object.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    match name {
        None | Some("") if generate.is_none_or(str::is_empty) => vec![FieldError::new(
            "metadata.name",
            Kind::Required,
            None,
            "name or generateName is required".into(),
        )],
        Some(name) if !name.is_empty() => {
            let mut out = Vec::new();
            if name.len() > 253 {
                out.push(FieldError::new(
                    "metadata.name",
                    Kind::Invalid,
                    Some(Value::String(name.to_owned())),
                    "must be no more than 253 characters".into(),
                ));
            }
            if !is_dns_subdomain(name) {
                out.push(FieldError::new(
                    "metadata.name",
                    Kind::Invalid,
                    Some(Value::String(name.to_owned())),
                    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                     characters, '-' or '.', and must start and end with an alphanumeric character \
                     (e.g. 'example.com', regex used for validation is \
                     '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                        .into(),
                ));
            }
            out
        }
        _ => Vec::new(),
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    name.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

#[cfg(test)]
mod tests;
