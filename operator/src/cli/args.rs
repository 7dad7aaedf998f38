//! `kubectl sluice`'s command line: a subcommand and its flags, parsed by
//! hand (a handful of flags do not justify a parser crate's build time).

use std::path::PathBuf;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `validate`: the operator's admission and reconcile-time checks.
    Validate,
    /// `plan`: the AWS resources and IAM statements; `--live` diffs them.
    Plan,
    /// `cost`: a monthly estimate.
    Cost,
    /// `graph`: the pipeline as a picture.
    Graph,
    /// `status`: a pipeline's state in the cluster.
    Status,
    /// `version`.
    Version,
    /// `help`.
    Help,
}

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
    /// A Mermaid flowchart (`graph`).
    Mermaid,
    /// Graphviz's language (`graph`).
    Dot,
    /// An SVG rendered by Graphviz (`graph`).
    Svg,
}

/// Parsed arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// The subcommand.
    pub command: Command,
    /// `-f`: files or directories of manifests (`-` is standard input).
    pub files: Vec<PathBuf>,
    /// `-o`.
    pub output: Option<Output>,
    /// `-n`: the namespace the pipelines go to (else each manifest's own,
    /// else `default`).
    pub namespace: Option<String>,
    /// `--name`: the pipeline's name instead of the manifest's.
    pub name: Option<String>,
    /// `--policy`: files of SluicePolicy objects to check against.
    pub policies: Vec<PathBuf>,
    /// `--namespace-label k=v`: the namespace's labels, for the policies'
    /// selectors.
    pub namespace_labels: Vec<(String, String)>,
    /// `--live`: compare with what exists in AWS.
    pub live: bool,
    /// `--reviewer-role`: the role `plan --live` reads a mapped
    /// namespace's account as.
    pub reviewer_role: Option<String>,
    /// `--assume-volume`: the volumes a cost estimate assumes.
    pub assume_volume: Option<PathBuf>,
    /// `--prices`: a price table instead of the compiled-in one.
    pub prices: Option<PathBuf>,
    /// `--region`: the operator's default region.
    pub region: Option<String>,
    /// `--account`: the AWS account (offline; `--live` asks STS).
    pub account: Option<String>,
    /// Positional arguments (`status NAME`, `graph NAME`).
    pub positional: Vec<String>,
}

/// The usage text.
pub const USAGE: &str = "\
kubectl sluice: review a DataPipeline before it merges, and see it after.

Usage:
  kubectl sluice validate -f FILE|DIR [--policy FILE]... [-o text|json]
  kubectl sluice plan     -f FILE [--live [--reviewer-role ARN]] [-n NAMESPACE] [--name NAME] [-o text|json]
  kubectl sluice cost     -f FILE [--assume-volume FILE] [--prices FILE] [-o text|json]
  kubectl sluice graph    -f FILE [-o mermaid|dot|svg]
  kubectl sluice status   NAME [-n NAMESPACE] [-o text|json]
  kubectl sluice version

Flags:
  -f, --filename PATH        a manifest file, a directory of them, or - for stdin (repeatable)
  -o, --output FORMAT        text (default), json; graph: mermaid (default), dot, svg
  -n, --namespace NS         the namespace the pipeline goes to (default: the manifest's, else default)
      --name NAME            the pipeline's name (default: the manifest's)
      --policy FILE          SluicePolicy objects to check against, as the operator would (repeatable)
      --namespace-label K=V  a label of the namespace, for the policies' selectors (repeatable)
      --live                 plan: compare with what exists in AWS (read-only credentials)
      --reviewer-role ARN    plan --live: the role to read a namespace's own AWS account as
                             (default: role/operators/<prefix>-reviewer of that account)
      --assume-volume FILE   cost: the volumes to price (default: documented default volumes, printed)
      --prices FILE          cost: a price table (default: config/prices/us-east-1.yaml, compiled in)
      --region REGION        the operator's default region (default: SLUICE_DEFAULT_REGION, AWS_REGION, us-east-1)
      --account ID           the AWS account names and ARNs are planned in (offline; default 123456789012)

The operator's configuration variables (SLUICE_NAME_PREFIX, SLUICE_ALLOWED_REGIONS,
SLUICE_PERMISSIONS_BOUNDARY, SLUICE_INSTALLATION_ID) are read from the environment
when set, so names and checks match the installation's.

Exit codes: 0 fine; 1 invalid input or an error; 2 plan --live found changes.
";

/// Parses `argv` (without the program's name).
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut it = argv.iter();
    let command = match it.next().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => Command::Help,
        Some("validate") => Command::Validate,
        Some("plan") => Command::Plan,
        Some("cost") => Command::Cost,
        Some("graph") => Command::Graph,
        Some("status") => Command::Status,
        Some("version" | "--version") => Command::Version,
        Some(other) => {
            return Err(format!(
                "unknown command {other:?}: expected validate, plan, cost, graph, status, version or help"
            ));
        }
    };
    let mut args = Args {
        command,
        files: Vec::new(),
        output: None,
        namespace: None,
        name: None,
        policies: Vec::new(),
        namespace_labels: Vec::new(),
        live: false,
        reviewer_role: None,
        assume_volume: None,
        prices: None,
        region: None,
        account: None,
        positional: Vec::new(),
    };
    while let Some(arg) = it.next() {
        // --flag=value and --flag value alike.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with('-') => (f, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs {what}"))
        };
        match flag {
            "-h" | "--help" => args.command = Command::Help,
            "-f" | "--filename" => args
                .files
                .push(PathBuf::from(value("a file or directory")?)),
            "-o" | "--output" => {
                let v = value("a format")?;
                args.output = Some(match v.as_str() {
                    "text" => Output::Text,
                    "json" => Output::Json,
                    "mermaid" => Output::Mermaid,
                    "dot" => Output::Dot,
                    "svg" => Output::Svg,
                    _ => {
                        return Err(format!(
                            "-o {v:?}: expected text or json (graph: mermaid, dot or svg)"
                        ));
                    }
                });
            }
            "-n" | "--namespace" => args.namespace = Some(value("a namespace")?),
            "--name" => args.name = Some(value("a name")?),
            "--policy" => args.policies.push(PathBuf::from(value("a file")?)),
            "--namespace-label" => {
                let v = value("KEY=VALUE")?;
                let (k, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--namespace-label {v:?}: expected KEY=VALUE"))?;
                args.namespace_labels.push((k.to_owned(), val.to_owned()));
            }
            "--live" => args.live = true,
            "--reviewer-role" => args.reviewer_role = Some(value("a role ARN")?),
            "--assume-volume" => args.assume_volume = Some(PathBuf::from(value("a file")?)),
            "--prices" => args.prices = Some(PathBuf::from(value("a file")?)),
            "--region" => args.region = Some(value("a region")?),
            "--account" => {
                let v = value("a 12-digit account id")?;
                if v.len() != 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("--account {v:?}: expected 12 digits"));
                }
                args.account = Some(v);
            }
            f if f.starts_with('-') && f != "-" => {
                return Err(format!("unknown flag {f}; see `kubectl sluice help`"));
            }
            _ => args.positional.push(arg.clone()),
        }
    }
    let wants_files = matches!(
        args.command,
        Command::Validate | Command::Plan | Command::Cost
    );
    if wants_files && args.files.is_empty() {
        return Err("no manifests: pass -f FILE|DIR (or -f - for standard input)".into());
    }
    if args.command == Command::Graph && args.files.is_empty() && args.positional.is_empty() {
        return Err("graph needs -f FILE or the NAME of a pipeline in the cluster".into());
    }
    if args.command == Command::Status && args.positional.len() != 1 {
        return Err("status needs the NAME of one pipeline".into());
    }
    if args.live && args.command != Command::Plan {
        return Err("--live is a flag of plan".into());
    }
    if args.reviewer_role.is_some() && !args.live {
        return Err("--reviewer-role is a flag of plan --live".into());
    }
    if (args.assume_volume.is_some() || args.prices.is_some()) && args.command != Command::Cost {
        return Err("--assume-volume and --prices are flags of cost".into());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_take_their_value_after_a_space_or_an_equals_sign() {
        let a = parse(&argv(
            "plan -f a.yaml --live --namespace=data -o json --name x",
        ))
        .expect("valid");
        assert_eq!(a.command, Command::Plan);
        assert_eq!(a.files, vec![PathBuf::from("a.yaml")]);
        assert!(a.live);
        assert_eq!(a.namespace.as_deref(), Some("data"));
        assert_eq!(a.output, Some(Output::Json));
        assert_eq!(a.name.as_deref(), Some("x"));
    }

    #[test]
    fn mistakes_are_named() {
        let e = |s: &str| parse(&argv(s)).expect_err(s);
        assert!(e("deploy").contains("unknown command \"deploy\""));
        assert!(e("validate").contains("-f FILE"));
        assert!(e("validate -f a --bogus").contains("--bogus"));
        assert!(e("validate -f a -o yaml").contains("-o \"yaml\""));
        assert!(e("cost -f a --live").contains("--live is a flag of plan"));
        assert!(
            e("plan -f a --reviewer-role r").contains("--reviewer-role is a flag of plan --live")
        );
        assert!(e("plan -f a --account 12").contains("12 digits"));
        assert!(e("status").contains("NAME"));
        assert!(e("plan -f").contains("-f needs"));
    }

    #[test]
    fn no_arguments_is_help() {
        assert_eq!(parse(&[]).expect("help").command, Command::Help);
    }
}
