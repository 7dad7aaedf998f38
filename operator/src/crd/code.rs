//! What a function runs: a built-in handler, the team's zip in S3, or the
//! team's container image, each pinned so the code never moves under a
//! running pipeline.
//!
//! AWS's rules for these values (Lambda's `CreateFunction` API reference),
//! enforced here at admission unless noted:
//!
//! | Value | AWS's rule | Where |
//! |---|---|---|
//! | `s3.bucket` | 3 to 63 characters, S3 bucket syntax | schema |
//! | `s3.key` | 1 to 1,024 characters | schema |
//! | `s3.versionId` | 1 to 1,024 characters | schema |
//! | `s3.sha256` | Sluice's pin: 64 lowercase hex digits | schema |
//! | `image.uri` | an Amazon ECR image URI; Sluice requires `@sha256:` | schema, CEL |
//! | `runtime` | one of the runtimes Lambda supports (Sluice takes four) | schema |
//! | `handler` | at most 128 characters, `[^\s]+` | schema |
//! | `handler` of Python | `module.function` (module a path) | CEL |
//! | `handler` of Node | `file.function` | CEL |
//! | `architecture` | `x86_64` or `arm64` | schema |
//! | a zip | at most 250 MB (262,144,000 bytes) unzipped | reconcile: `Stalled` |
//! | `bootstrap` of `provided.*` | an executable of the function's architecture | reconcile: `Stalled` |
//! | the pinned object | SHA-256 equal to `s3.sha256` | reconcile: `Stalled` |
//! | the image | in Amazon ECR in the function's region | reconcile: `Stalled` |

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A function's code; exactly one of `builtin`, `s3` and `image`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.builtin), has(self.s3), has(self.image)].filter(x, x).size() == 1", "message": "code must set exactly one of builtin (a handler of Sluice's), s3 (a zip pinned by versionId or sha256) or image (an ECR image pinned by digest)"},
    {"rule": "has(self.s3) == has(self.runtime)", "message": "runtime is required with code.s3 (provided.al2023, python3.12, python3.13 or nodejs22.x) and not allowed otherwise: a built-in handler runs on provided.al2023 and an image brings its own"},
    {"rule": "has(self.s3) == has(self.handler)", "message": "handler is required with code.s3 (bootstrap for provided.al2023, module.function for Python, file.function for Node) and not allowed otherwise"},
    {"rule": "!has(self.builtin) || !has(self.architecture)", "message": "architecture is not allowed with code.builtin: a built-in handler runs on the architecture the operator's handlers were built for"},
    {"rule": "!has(self.runtime) || !has(self.handler) || !self.runtime.startsWith('python') || self.handler.matches('^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*([.][A-Za-z_][A-Za-z0-9_]*)+$')", "message": "a Python handler is module.function (e.g. handler.handler, or pkg/module.function), the module a .py file in the zip"},
    {"rule": "!has(self.runtime) || !has(self.handler) || !self.runtime.startsWith('nodejs') || self.handler.matches('^[A-Za-z0-9_./-]+[.][A-Za-z_$][A-Za-z0-9_$]*$')", "message": "a Node handler is file.function (e.g. index.handler), the file a .js, .mjs or .cjs file in the zip"}
]))]
pub struct CodeSpec {
    /// A built-in handler of Sluice's `handlers` crate, e.g. `router`
    /// (what `functions[].handler` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub builtin: Option<String>,

    /// A zip the team uploaded to S3, pinned by its object version or its
    /// SHA-256 (a key alone can be overwritten, so it is refused). The
    /// bucket must be one the namespace's SluicePolicy lists in
    /// `code.buckets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Code>,

    /// A container image in Amazon ECR, pinned by digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageCode>,

    /// The runtime of a zip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<CodeRuntime>,

    /// The entry point of a zip: `bootstrap` (any value) for
    /// `provided.al2023`, `module.function` for Python, `file.function` for
    /// Node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[^\s]+$"))]
    pub handler: Option<String>,

    /// Instruction set of a zip or image (default `x86_64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<CodeArchitecture>,
}

/// A zip in S3.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.versionId), has(self.sha256)].filter(x, x).size() == 1", "message": "pin the object: set exactly one of versionId (a versioned bucket's object version) or sha256 (the zip's SHA-256, hex); a key alone can be overwritten"}
]))]
pub struct S3Code {
    /// Bucket name (not a bucket of the pipeline: code is uploaded before
    /// the pipeline exists).
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,

    /// Object key of the zip.
    #[schemars(length(min = 1, max = 1024))]
    pub key: String,

    /// The object version (in a bucket with versioning on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub version_id: Option<String>,

    /// The zip's SHA-256, 64 lowercase hex digits: the object at `key` must
    /// have it when it is deployed, and the deployed code must keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
}

/// A container image.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageCode {
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<digest>`.
    /// The repository must be one the namespace's SluicePolicy lists in
    /// `code.imageRepositories`.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.contains('@sha256:')", "message": "pin the image by digest (…@sha256:<64 hex>): a tag can be moved to other code, and Lambda would keep running what the tag named when it was deployed"},
        {"rule": "self.matches('^[0-9]{12}[.]dkr[.]ecr[.][a-z0-9-]+[.]amazonaws[.]com(|[.]cn)/[a-z0-9]+([._/-][a-z0-9]+)*@sha256:[0-9a-f]{64}$')", "message": "must be an Amazon ECR image URI, <account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:<64 lowercase hex>: Lambda runs images from ECR only"}
    ]))]
    pub uri: String,
}

/// Runtimes a zip may declare.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CodeRuntime {
    /// An executable `bootstrap` (Rust, Go, ...).
    #[serde(rename = "provided.al2023")]
    ProvidedAl2023,
    /// Python 3.12.
    #[serde(rename = "python3.12")]
    Python312,
    /// Python 3.13.
    #[serde(rename = "python3.13")]
    Python313,
    /// Node.js 22.
    #[serde(rename = "nodejs22.x")]
    Nodejs22,
}

impl CodeRuntime {
    /// Lambda's name of the runtime.
    pub fn as_aws(self) -> &'static str {
        match self {
            CodeRuntime::ProvidedAl2023 => "provided.al2023",
            CodeRuntime::Python312 => "python3.12",
            CodeRuntime::Python313 => "python3.13",
            CodeRuntime::Nodejs22 => "nodejs22.x",
        }
    }
}

/// Instruction sets.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum CodeArchitecture {
    /// 64-bit x86.
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit ARM (Graviton).
    #[serde(rename = "arm64")]
    Arm64,
}

impl CodeArchitecture {
    /// Lambda's name of the architecture.
    pub fn as_aws(self) -> &'static str {
        match self {
            CodeArchitecture::X86_64 => "x86_64",
            CodeArchitecture::Arm64 => "arm64",
        }
    }
}
