//! The pipeline spec: YAML in, a validated DAG of typed steps out.
//!
//! Loading happens once, here. The YAML is read into a generic tree, then every field is checked
//! and converted with its path (`spec.steps[2].command`), collecting every problem before failing,
//! so a user fixes a spec in one round. The result, [`Pipeline`], holds parsed templates and
//! conditions and each step's dependencies as indices, in a topological order; nothing downstream
//! parses strings again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Component, Path};
use std::time::Duration;

use serde_yaml::{Mapping, Value};
use sextant_echo::{cut, echo};

use crate::condition::Condition;
use crate::template::{Reference, Template, TemplateError};

/// The `apiVersion` a pipeline spec must carry.
pub const API_VERSION: &str = "sextant.dev/v1beta1";
/// The `kind` a pipeline spec must carry.
pub const KIND: &str = "Pipeline";
/// The built-in step kind: run `command` as a process.
pub const COMMAND_KIND: &str = "command";
/// The longest issue message kept whole; one quoting a long value is cut past it.
const MAX_ISSUE_CHARACTERS: usize = 1000;

/// A validated pipeline: steps in a DAG whose references all resolve.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// `metadata.name`.
    pub name: String,
    /// `spec.params`, in declaration order.
    pub params: Vec<ParamDeclaration>,
    /// `spec.steps`, in declaration order; [`Step::dependencies`] index into this list.
    pub steps: Vec<Step>,
    /// Indices of `steps` such that every step comes after its dependencies.
    pub topological_order: Vec<usize>,
    /// The YAML the pipeline was loaded from, kept so a stored run can be resumed.
    pub source: String,
}

/// A pipeline parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamDeclaration {
    /// The name used in `{{params.NAME}}`.
    pub name: String,
    /// The value when the run does not set one; without it the run must.
    pub default: Option<String>,
}

/// One step of the DAG.
#[derive(Debug, Clone)]
pub struct Step {
    /// Unique within the pipeline; also the name of the step's working directory.
    pub name: String,
    /// [`COMMAND_KIND`] or the kind a plug-in registered (see [`crate::kind`]).
    pub kind: String,
    /// The argv, each item a template; empty only for plug-in kinds.
    pub command: Vec<Template>,
    /// Extra environment variables, values templated.
    pub env: Vec<(String, Template)>,
    /// The container image; only the Argo compiler needs it.
    pub image: Option<String>,
    /// Output parameters: files in the working directory whose text becomes the value.
    pub output_params: Vec<OutputDeclaration>,
    /// Output artifacts: files or directories in the working directory, passed on by path.
    pub output_artifacts: Vec<OutputDeclaration>,
    /// Run only when this holds; otherwise the step is skipped.
    pub when: Option<Condition>,
    /// The names listed in `dependsOn`.
    pub depends_on: Vec<String>,
    /// Every step this one waits for (from `dependsOn` and references), as sorted indices.
    pub dependencies: Vec<usize>,
    /// `withItems`: one execution per item.
    pub items: Option<Vec<Item>>,
    /// How failed executions are retried.
    pub retry: RetryPolicy,
    /// The longest one attempt may run.
    pub timeout: Option<Duration>,
    /// `cache: false` turns result reuse off for this step.
    pub cache: bool,
    /// The free-form `spec` mapping of a plug-in kind, as JSON; its strings may hold references.
    pub kind_spec: Option<serde_json::Value>,
}

/// A declared output: a name and a path relative to the step's working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDeclaration {
    /// The name used in `{{steps.S.outputs.params.NAME}}` / `artifacts.NAME`.
    pub name: String,
    /// Relative to the working directory, without `..`.
    pub path: String,
}

/// One `withItems` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Item {
    /// A scalar item, read with `{{item}}`.
    Text(String),
    /// A map item, read with `{{item.FIELD}}` (and `{{item}}` gives it as JSON).
    Map(BTreeMap<String, String>),
}

/// Retries of a failed step, with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: no retry).
    pub limit: u32,
    /// The wait before the first retry; it doubles for each further retry.
    pub backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Option<Duration>,
}

/// Why a spec was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The text is not YAML.
    #[error("malformed pipeline yaml: {0}")]
    Yaml(#[source] serde_yaml::Error),
    /// The YAML does not describe a valid pipeline; every problem found is listed.
    #[error("invalid pipeline spec:\n{0}")]
    Invalid(SpecIssues),
}

/// The problems found in a spec, each with its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssues(pub Vec<SpecIssue>);

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    /// Where, as `spec.steps[2].command`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// Why the parameters given to a run do not fit the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A value for a parameter the pipeline does not declare.
    #[error("unknown parameter `{0}` (not in spec.params)")]
    Unknown(String),
    /// A parameter without a default that the run did not set.
    #[error("parameter `{0}` has no default and was not given a value")]
    Missing(String),
}

// === impl Pipeline ===

impl Pipeline {
    /// Parses and validates a pipeline spec.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let document: Value = serde_yaml::from_str(text).map_err(SpecError::Yaml)?;
        let mut loader = Loader::default();
        let pipeline = loader.pipeline(&document, text);
        match pipeline {
            Some(pipeline) if loader.issues.is_empty() => Ok(pipeline),
            _ => Err(SpecError::Invalid(SpecIssues(loader.issues))),
        }
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.name == name)
    }

    /// The parameter values of a run: the defaults, overridden by `overrides`.
    pub fn resolve_params(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ParamError> {
        if let Some(unknown) = overrides
            .keys()
            .find(|name| !self.params.iter().any(|param| &param.name == *name))
        {
            return Err(ParamError::Unknown(unknown.clone()));
        }
        self.params
            .iter()
            .map(|param| {
                let value = overrides
                    .get(&param.name)
                    .or(param.default.as_ref())
                    .ok_or_else(|| ParamError::Missing(param.name.clone()))?;
                Ok((param.name.clone(), value.clone()))
            })
            .collect()
    }
}

// === impl Step ===

impl Step {
    /// Every reference the step makes, with the field path it appears at.
    pub fn references(&self) -> Vec<(String, Reference)> {
        let mut found = Vec::new();
        for (index, argument) in self.command.iter().enumerate() {
            found.extend(
                argument
                    .references()
                    .map(|reference| (format!("command[{index}]"), reference.clone())),
            );
        }
        for (name, value) in &self.env {
            found.extend(
                value
                    .references()
                    .map(|reference| (format!("env.{name}"), reference.clone())),
            );
        }
        if let Some(condition) = &self.when {
            found.extend(
                condition
                    .references()
                    .into_iter()
                    .map(|reference| ("when".to_owned(), reference.clone())),
            );
        }
        if let Some(kind_spec) = &self.kind_spec {
            let mut templates = Vec::new();
            collect_json_templates(kind_spec, "spec", &mut templates);
            for (path, template) in templates {
                found.extend(
                    template
                        .references()
                        .map(|reference| (path.clone(), reference.clone())),
                );
            }
        }
        found
    }

    /// The step runs once per item.
    pub fn is_fanned_out(&self) -> bool {
        self.items.is_some()
    }
}

/// Every string leaf of a JSON value parsed as a template, with its path; leaves that fail to
/// parse are left out (the loader reports them).
pub(crate) fn collect_json_templates(
    value: &serde_json::Value,
    path: &str,
    found: &mut Vec<(String, Template)>,
) {
    match value {
        serde_json::Value::String(text) => {
            if let Ok(template) = Template::parse(text) {
                found.push((path.to_owned(), template));
            }
        }
        serde_json::Value::Array(values) => {
            for (index, value) in values.iter().enumerate() {
                collect_json_templates(value, &format!("{path}[{index}]"), found);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                collect_json_templates(value, &format!("{path}.{key}"), found);
            }
        }
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {}
    }
}

/// A JSON value with every string leaf parsed as a template and rendered by `render`: a plug-in
/// step's `spec` as the executor runs it, or as the Argo compiler passes it on.
pub(crate) fn render_json_templates<E: From<TemplateError>>(
    value: &serde_json::Value,
    render: &impl Fn(&Template) -> Result<String, E>,
) -> Result<serde_json::Value, E> {
    Ok(match value {
        serde_json::Value::String(text) => {
            let template = Template::parse(text)?;
            serde_json::Value::String(render(&template)?)
        }
        serde_json::Value::Array(values) => serde_json::Value::Array(
            values
                .iter()
                .map(|value| render_json_templates(value, render))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(key, value)| Ok((key.clone(), render_json_templates(value, render)?)))
                .collect::<Result<_, E>>()?,
        ),
        other => other.clone(),
    })
}

// === impl RetryPolicy ===

impl RetryPolicy {
    /// No retries.
    pub const NONE: Self = Self {
        limit: 0,
        backoff: Duration::ZERO,
        max_backoff: None,
    };

    /// The wait before retry number `retry` (1 for the first retry): `backoff * 2^(retry-1)`,
    /// capped at `max_backoff`.
    pub fn delay_before_retry(&self, retry: u32) -> Duration {
        let factor = 2f64.powi(retry.saturating_sub(1).min(30) as i32);
        let delay = self.backoff.mul_f64(factor);
        match self.max_backoff {
            Some(max_backoff) => delay.min(max_backoff),
            None => delay,
        }
    }
}

// === impl Item ===

impl Item {
    /// The value `{{item}}` stands for: the text, or the map as JSON.
    pub fn as_text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            // Serializing a map of strings cannot fail.
            Self::Map(map) => serde_json::to_string(map).unwrap_or_default(),
        }
    }
}

// === impl SpecIssues ===

impl fmt::Display for SpecIssues {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, issue) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
            }
            write!(formatter, "  {}: {}", issue.path, issue.message)?;
        }
        Ok(())
    }
}

// === the loader ===

#[derive(Default)]
struct Loader {
    issues: Vec<SpecIssue>,
}

const STEP_FIELDS: &[&str] = &[
    "name",
    "kind",
    "command",
    "env",
    "image",
    "outputs",
    "when",
    "dependsOn",
    "withItems",
    "retry",
    "timeoutSeconds",
    "cache",
    "spec",
];

impl Loader {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        // Messages quote the values they are about; whatever one quotes, it stays short.
        let message = cut(&message.into(), MAX_ISSUE_CHARACTERS).into_owned();
        self.issues.push(SpecIssue {
            path: path.into(),
            message,
        });
    }

    fn mapping<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a Mapping> {
        match value {
            Value::Mapping(mapping) => Some(mapping),
            other => {
                self.issue(
                    path,
                    format!("expected a mapping, found {}", describe(other)),
                );
                None
            }
        }
    }

    fn check_keys(&mut self, mapping: &Mapping, allowed: &[&str], path: &str) {
        for key in mapping.keys() {
            match key.as_str() {
                Some(key) if allowed.contains(&key) => {}
                Some(key) => self.issue(
                    join(path, key),
                    format!("unknown field (expected one of: {})", allowed.join(", ")),
                ),
                None => self.issue(
                    path,
                    format!("field names must be strings, found {}", describe(key)),
                ),
            }
        }
    }

    fn scalar(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = scalar_text(value);
        if text.is_none() {
            self.issue(
                path,
                format!("expected a string, found {}", describe(value)),
            );
        }
        text
    }

    fn name(&mut self, value: Option<&Value>, path: &str, what: &str) -> Option<String> {
        let Some(value) = value else {
            self.issue(path, format!("missing {what} name"));
            return None;
        };
        let name = self.scalar(value, path)?;
        if name.is_empty()
            || !name.chars().all(|character| {
                character.is_ascii_alphanumeric() || character == '-' || character == '_'
            })
        {
            self.issue(
                path,
                format!("{what} name `{name}` must be non-empty and use only letters, digits, `-` and `_`"),
            );
            return None;
        }
        Some(name)
    }

    fn template(&mut self, value: &Value, path: &str) -> Option<Template> {
        let text = self.scalar(value, path)?;
        match Template::parse(&text) {
            Ok(template) => Some(template),
            Err(error) => {
                self.issue(path, error.to_string());
                None
            }
        }
    }

    fn seconds(&mut self, value: &Value, path: &str) -> Option<Duration> {
        let seconds = match value {
            Value::Number(number) => number.as_f64(),
            _ => None,
        };
        match seconds {
            Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                Some(Duration::from_secs_f64(seconds))
            }
            _ => {
                self.issue(
                    path,
                    format!(
                        "expected a non-negative number of seconds, found {}",
                        describe(value)
                    ),
                );
                None
            }
        }
    }

    fn pipeline(&mut self, document: &Value, source: &str) -> Option<Pipeline> {
        let root = self.mapping(document, "(document)")?;
        self.check_keys(root, &["apiVersion", "kind", "metadata", "spec"], "");
        match root.get("apiVersion").and_then(Value::as_str) {
            Some(API_VERSION) => {}
            other => self.issue(
                "apiVersion",
                format!(
                    "expected `{API_VERSION}`, found {}",
                    other.map_or("nothing".to_owned(), |found| format!("`{found}`"))
                ),
            ),
        }
        match root.get("kind").and_then(Value::as_str) {
            Some(KIND) => {}
            other => self.issue(
                "kind",
                format!(
                    "expected `{KIND}`, found {}",
                    other.map_or("nothing".to_owned(), |found| format!("`{found}`"))
                ),
            ),
        }
        let name = match root.get("metadata") {
            Some(metadata) => self.mapping(metadata, "metadata").and_then(|metadata| {
                self.check_keys(metadata, &["name", "labels", "annotations"], "metadata");
                self.name(metadata.get("name"), "metadata.name", "pipeline")
            }),
            None => {
                self.issue("metadata", "missing field");
                None
            }
        };
        let Some(spec_value) = root.get("spec") else {
            self.issue("spec", "missing field");
            return None;
        };
        let spec = self.mapping(spec_value, "spec")?;
        self.check_keys(spec, &["params", "steps"], "spec");
        let params = match spec.get("params") {
            Some(params) => self.params(params),
            None => Vec::new(),
        };
        let steps = match spec.get("steps") {
            Some(Value::Sequence(steps)) if !steps.is_empty() => steps
                .iter()
                .enumerate()
                .map(|(index, step)| self.step(step, &format!("spec.steps[{index}]")))
                .collect::<Vec<_>>(),
            Some(Value::Sequence(_)) => {
                self.issue("spec.steps", "a pipeline needs at least one step");
                Vec::new()
            }
            Some(other) => {
                self.issue(
                    "spec.steps",
                    format!("expected a list, found {}", describe(other)),
                );
                Vec::new()
            }
            None => {
                self.issue("spec.steps", "missing field");
                Vec::new()
            }
        };
        self.check_unique_names(&steps);
        if !self.issues.is_empty() {
            // Reference checks on a partial step list would report follow-on noise.
            return None;
        }
        let mut steps: Vec<Step> = steps.into_iter().flatten().collect();
        self.link(&mut steps, &params);
        let topological_order = self.order(&steps)?;
        Some(Pipeline {
            name: name?,
            params,
            steps,
            topological_order,
            source: source.to_owned(),
        })
    }

    fn params(&mut self, value: &Value) -> Vec<ParamDeclaration> {
        let Value::Sequence(entries) = value else {
            self.issue(
                "spec.params",
                format!("expected a list, found {}", describe(value)),
            );
            return Vec::new();
        };
        let mut params: Vec<ParamDeclaration> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let path = format!("spec.params[{index}]");
            let Some(mapping) = self.mapping(entry, &path) else {
                continue;
            };
            self.check_keys(mapping, &["name", "default", "description"], &path);
            let Some(name) = self.name(mapping.get("name"), &join(&path, "name"), "parameter")
            else {
                continue;
            };
            let default = match mapping.get("default") {
                Some(value) => self.scalar(value, &join(&path, "default")),
                None => None,
            };
            if params.iter().any(|param| param.name == name) {
                self.issue(
                    join(&path, "name"),
                    format!("duplicate parameter name `{name}`"),
                );
                continue;
            }
            params.push(ParamDeclaration { name, default });
        }
        params
    }

    fn step(&mut self, value: &Value, path: &str) -> Option<Step> {
        let mapping = self.mapping(value, path)?;
        let issues_before = self.issues.len();
        self.check_keys(mapping, STEP_FIELDS, path);
        let name = self.name(mapping.get("name"), &join(path, "name"), "step");
        let kind = match mapping.get("kind") {
            Some(kind) => self.name(Some(kind), &join(path, "kind"), "kind"),
            None => Some(COMMAND_KIND.to_owned()),
        };
        let command = match mapping.get("command") {
            Some(Value::Sequence(arguments)) => arguments
                .iter()
                .enumerate()
                .filter_map(|(index, argument)| {
                    self.template(argument, &format!("{path}.command[{index}]"))
                })
                .collect(),
            Some(other) => {
                self.issue(
                    join(path, "command"),
                    format!(
                        "expected a list of argv items (no shell), found {}",
                        describe(other)
                    ),
                );
                Vec::new()
            }
            None => Vec::new(),
        };
        if kind.as_deref() == Some(COMMAND_KIND) && mapping.get("command").is_none() {
            self.issue(
                join(path, "command"),
                "missing command (a list of argv items)",
            );
        } else if kind.as_deref() == Some(COMMAND_KIND)
            && matches!(mapping.get("command"), Some(Value::Sequence(arguments)) if arguments.is_empty())
        {
            self.issue(
                join(path, "command"),
                "command is empty: it needs at least the program",
            );
        }
        let env = match mapping.get("env") {
            Some(value) => self.env(value, &join(path, "env")),
            None => Vec::new(),
        };
        let image = match mapping.get("image") {
            Some(value) => self.scalar(value, &join(path, "image")),
            None => None,
        };
        let (output_params, output_artifacts) = match mapping.get("outputs") {
            Some(value) => self.outputs(value, &join(path, "outputs")),
            None => (Vec::new(), Vec::new()),
        };
        let when = match mapping.get("when") {
            Some(value) => self.scalar(value, &join(path, "when")).and_then(|text| {
                Condition::parse(&text)
                    .map_err(|error| {
                        self.issue(
                            join(path, "when"),
                            format!("bad condition `{}`: {error}", echo(&text)),
                        )
                    })
                    .ok()
            }),
            None => None,
        };
        let depends_on = match mapping.get("dependsOn") {
            Some(Value::Sequence(names)) => names
                .iter()
                .enumerate()
                .filter_map(|(index, name)| {
                    self.name(Some(name), &format!("{path}.dependsOn[{index}]"), "step")
                })
                .collect(),
            Some(other) => {
                self.issue(
                    join(path, "dependsOn"),
                    format!("expected a list of step names, found {}", describe(other)),
                );
                Vec::new()
            }
            None => Vec::new(),
        };
        let items = match mapping.get("withItems") {
            Some(value) => self.items(value, &join(path, "withItems")),
            None => None,
        };
        let retry = match mapping.get("retry") {
            Some(value) => self.retry(value, &join(path, "retry")),
            None => RetryPolicy::NONE,
        };
        let timeout = match mapping.get("timeoutSeconds") {
            Some(value) => {
                let timeout = self.seconds(value, &join(path, "timeoutSeconds"));
                if timeout == Some(Duration::ZERO) {
                    self.issue(join(path, "timeoutSeconds"), "must be greater than zero");
                }
                timeout
            }
            None => None,
        };
        let cache = match mapping.get("cache") {
            Some(Value::Bool(cache)) => *cache,
            Some(other) => {
                self.issue(
                    join(path, "cache"),
                    format!("expected true or false, found {}", describe(other)),
                );
                true
            }
            None => true,
        };
        let kind_spec = match mapping.get("spec") {
            Some(value) => self.kind_spec(value, &join(path, "spec"), kind.as_deref()),
            None => None,
        };
        if self.issues.len() > issues_before {
            return None;
        }
        Some(Step {
            name: name?,
            kind: kind?,
            command,
            env,
            image,
            output_params,
            output_artifacts,
            when,
            depends_on,
            dependencies: Vec::new(),
            items,
            retry,
            timeout,
            cache,
            kind_spec,
        })
    }

    fn env(&mut self, value: &Value, path: &str) -> Vec<(String, Template)> {
        let Some(mapping) = self.mapping(value, path) else {
            return Vec::new();
        };
        let mut env = Vec::new();
        for (key, value) in mapping {
            let Some(key) = key.as_str() else {
                self.issue(
                    path,
                    format!("variable names must be strings, found {}", describe(key)),
                );
                continue;
            };
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                self.issue(
                    join(path, key),
                    "variable names must be non-empty without `=` or NUL",
                );
                continue;
            }
            if let Some(template) = self.template(value, &join(path, key)) {
                env.push((key.to_owned(), template));
            }
        }
        env
    }

    fn outputs(
        &mut self,
        value: &Value,
        path: &str,
    ) -> (Vec<OutputDeclaration>, Vec<OutputDeclaration>) {
        let Some(mapping) = self.mapping(value, path) else {
            return (Vec::new(), Vec::new());
        };
        self.check_keys(mapping, &["params", "artifacts"], path);
        let params = match mapping.get("params") {
            Some(value) => self.output_list(value, &join(path, "params"), "output parameter"),
            None => Vec::new(),
        };
        let artifacts = match mapping.get("artifacts") {
            Some(value) => self.output_list(value, &join(path, "artifacts"), "output artifact"),
            None => Vec::new(),
        };
        (params, artifacts)
    }

    fn output_list(&mut self, value: &Value, path: &str, what: &str) -> Vec<OutputDeclaration> {
        let Value::Sequence(entries) = value else {
            self.issue(path, format!("expected a list, found {}", describe(value)));
            return Vec::new();
        };
        let mut outputs: Vec<OutputDeclaration> = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let entry_path = format!("{path}[{index}]");
            let Some(mapping) = self.mapping(entry, &entry_path) else {
                continue;
            };
            self.check_keys(mapping, &["name", "path"], &entry_path);
            let name = self.name(mapping.get("name"), &join(&entry_path, "name"), what);
            let output_path = match mapping.get("path") {
                Some(value) => self.scalar(value, &join(&entry_path, "path")),
                None => {
                    self.issue(join(&entry_path, "path"), "missing path");
                    None
                }
            };
            let (Some(name), Some(output_path)) = (name, output_path) else {
                continue;
            };
            let relative = Path::new(&output_path);
            if output_path.is_empty()
                || !relative
                    .components()
                    .all(|component| matches!(component, Component::Normal(_) | Component::CurDir))
            {
                self.issue(
                    join(&entry_path, "path"),
                    format!("`{output_path}` must be a relative path inside the step's working directory (no `..`, no leading `/`)"),
                );
                continue;
            }
            if outputs.iter().any(|output| output.name == name) {
                self.issue(
                    join(&entry_path, "name"),
                    format!("duplicate {what} name `{name}`"),
                );
                continue;
            }
            outputs.push(OutputDeclaration {
                name,
                path: output_path,
            });
        }
        outputs
    }

    fn items(&mut self, value: &Value, path: &str) -> Option<Vec<Item>> {
        let Value::Sequence(entries) = value else {
            self.issue(
                path,
                format!("expected a list of items, found {}", describe(value)),
            );
            return None;
        };
        if entries.is_empty() {
            self.issue(path, "withItems needs at least one item");
            return None;
        }
        let mut items = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let entry_path = format!("{path}[{index}]");
            if let Value::Mapping(mapping) = entry {
                let mut fields = BTreeMap::new();
                for (key, value) in mapping {
                    let Some(key) = key.as_str() else {
                        self.issue(
                            &entry_path,
                            format!("item field names must be strings, found {}", describe(key)),
                        );
                        continue;
                    };
                    if let Some(value) = self.scalar(value, &join(&entry_path, key)) {
                        fields.insert(key.to_owned(), value);
                    }
                }
                items.push(Item::Map(fields));
            } else if let Some(text) = scalar_text(entry) {
                items.push(Item::Text(text));
            } else {
                self.issue(
                    entry_path,
                    format!(
                        "an item is a string or a mapping of strings, found {}",
                        describe(entry)
                    ),
                );
            }
        }
        Some(items)
    }

    fn retry(&mut self, value: &Value, path: &str) -> RetryPolicy {
        let Some(mapping) = self.mapping(value, path) else {
            return RetryPolicy::NONE;
        };
        self.check_keys(
            mapping,
            &["limit", "backoffSeconds", "maxBackoffSeconds"],
            path,
        );
        let limit = match mapping.get("limit") {
            Some(Value::Number(number)) if number.as_u64().is_some_and(|limit| limit <= 1000) => {
                number.as_u64().unwrap_or(0) as u32
            }
            Some(other) => {
                self.issue(
                    join(path, "limit"),
                    format!(
                        "expected a whole number from 0 to 1000, found {}",
                        describe(other)
                    ),
                );
                0
            }
            None => {
                self.issue(join(path, "limit"), "missing limit (the number of retries)");
                0
            }
        };
        let backoff = match mapping.get("backoffSeconds") {
            Some(value) => self
                .seconds(value, &join(path, "backoffSeconds"))
                .unwrap_or_default(),
            None => Duration::from_secs(1),
        };
        let max_backoff = match mapping.get("maxBackoffSeconds") {
            Some(value) => self.seconds(value, &join(path, "maxBackoffSeconds")),
            None => None,
        };
        RetryPolicy {
            limit,
            backoff,
            max_backoff,
        }
    }

    fn kind_spec(
        &mut self,
        value: &Value,
        path: &str,
        kind: Option<&str>,
    ) -> Option<serde_json::Value> {
        if kind == Some(COMMAND_KIND) {
            self.issue(
                path,
                "`spec` belongs to plug-in step kinds; a command step takes `command`",
            );
            return None;
        }
        if !matches!(value, Value::Mapping(_)) {
            self.issue(
                path,
                format!("expected a mapping, found {}", describe(value)),
            );
            return None;
        }
        let json = match serde_json::to_value(value) {
            Ok(json) => json,
            Err(error) => {
                self.issue(path, format!("cannot be represented as JSON: {error}"));
                return None;
            }
        };
        self.check_json_templates(&json, path);
        Some(json)
    }

    fn check_json_templates(&mut self, value: &serde_json::Value, path: &str) {
        match value {
            serde_json::Value::String(text) => {
                if let Err(error) = Template::parse(text) {
                    self.issue(path, error.to_string());
                }
            }
            serde_json::Value::Array(values) => {
                for (index, value) in values.iter().enumerate() {
                    self.check_json_templates(value, &format!("{path}[{index}]"));
                }
            }
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    self.check_json_templates(value, &join(path, key));
                }
            }
            serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => {
            }
        }
    }

    fn check_unique_names(&mut self, steps: &[Option<Step>]) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (index, step) in steps.iter().enumerate() {
            let Some(step) = step else {
                continue;
            };
            if let Some(first) = seen.insert(&step.name, index) {
                self.issue(
                    format!("spec.steps[{index}].name"),
                    format!(
                        "duplicate step name `{}` (also spec.steps[{first}])",
                        step.name
                    ),
                );
            }
        }
    }

    /// Resolves references and `dependsOn` into dependency indices, reporting unknown targets.
    fn link(&mut self, steps: &mut [Step], params: &[ParamDeclaration]) {
        let index_by_name: HashMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(index, step)| (step.name.clone(), index))
            .collect();
        let mut all_dependencies = Vec::with_capacity(steps.len());
        for (index, step) in steps.iter().enumerate() {
            let path = format!("spec.steps[{index}]");
            let mut dependencies = BTreeSet::new();
            for (position, name) in step.depends_on.iter().enumerate() {
                match index_by_name.get(name) {
                    Some(target) => {
                        dependencies.insert(*target);
                    }
                    None => self.issue(
                        format!("{path}.dependsOn[{position}]"),
                        format!("unknown step `{name}`"),
                    ),
                }
            }
            for (field, reference) in step.references() {
                let field_path = join(&path, &field);
                match &reference {
                    Reference::Param(name) => {
                        if !params.iter().any(|param| &param.name == name) {
                            self.issue(field_path, format!("`{{{{{reference}}}}}`: unknown parameter `{name}` (not in spec.params)"));
                        }
                    }
                    Reference::StepParam {
                        step: target,
                        output,
                    }
                    | Reference::StepArtifact {
                        step: target,
                        output,
                    } => {
                        let Some(target_index) = index_by_name.get(target) else {
                            self.issue(
                                field_path,
                                format!("`{{{{{reference}}}}}`: unknown step `{target}`"),
                            );
                            continue;
                        };
                        let target_step = &steps[*target_index];
                        let (declared, what) = match reference {
                            Reference::StepParam { .. } => {
                                (&target_step.output_params, "output parameter")
                            }
                            _ => (&target_step.output_artifacts, "output artifact"),
                        };
                        if !declared
                            .iter()
                            .any(|declaration| &declaration.name == output)
                        {
                            self.issue(field_path, format!("`{{{{{reference}}}}}`: step `{target}` declares no {what} `{output}`"));
                            continue;
                        }
                        dependencies.insert(*target_index);
                    }
                    Reference::Item => {
                        if step.items.is_none() {
                            self.issue(
                                field_path,
                                "`{{item}}` is only defined in a step with withItems",
                            );
                        }
                    }
                    Reference::ItemField(field) => match &step.items {
                        None => self.issue(
                            field_path,
                            format!(
                                "`{{{{item.{field}}}}}` is only defined in a step with withItems"
                            ),
                        ),
                        Some(items) => {
                            if let Some(position) = items.iter().position(|item| match item {
                                Item::Map(map) => !map.contains_key(field),
                                Item::Text(_) => true,
                            }) {
                                self.issue(
                                    field_path,
                                    format!("`{{{{item.{field}}}}}`: withItems[{position}] is not a mapping with field `{field}`"),
                                );
                            }
                        }
                    },
                }
            }
            all_dependencies.push(dependencies.into_iter().collect::<Vec<_>>());
        }
        for (step, dependencies) in steps.iter_mut().zip(all_dependencies) {
            step.dependencies = dependencies;
        }
    }

    /// A topological order (Kahn), or an issue naming one cycle.
    fn order(&mut self, steps: &[Step]) -> Option<Vec<usize>> {
        if !self.issues.is_empty() {
            return None;
        }
        let mut remaining_dependencies: Vec<usize> =
            steps.iter().map(|step| step.dependencies.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        for (index, step) in steps.iter().enumerate() {
            for dependency in &step.dependencies {
                dependents[*dependency].push(index);
            }
        }
        let mut ready: Vec<usize> = (0..steps.len())
            .filter(|index| remaining_dependencies[*index] == 0)
            .rev()
            .collect();
        let mut order = Vec::with_capacity(steps.len());
        while let Some(index) = ready.pop() {
            order.push(index);
            for dependent in &dependents[index] {
                remaining_dependencies[*dependent] -= 1;
                if remaining_dependencies[*dependent] == 0 {
                    ready.push(*dependent);
                }
            }
        }
        if order.len() == steps.len() {
            return Some(order);
        }
        // Every step left over waits on another left-over step, so walking left-over
        // dependencies from any of them must come back to a step already seen.
        let Some(start) = (0..steps.len()).find(|index| remaining_dependencies[*index] > 0) else {
            return Some(order);
        };
        let mut walk = vec![start];
        let mut current = start;
        while let Some(next) = steps[current]
            .dependencies
            .iter()
            .copied()
            .find(|dependency| remaining_dependencies[*dependency] > 0)
        {
            if let Some(position) = walk.iter().position(|seen| *seen == next) {
                let mut cycle: Vec<&str> = walk[position..]
                    .iter()
                    .map(|index| steps[*index].name.as_str())
                    .collect();
                cycle.push(&steps[next].name);
                self.issue(
                    format!("spec.steps[{next}]"),
                    format!(
                        "dependency cycle: {} (each step waits for the next)",
                        cycle.join(" -> ")
                    ),
                );
                return None;
            }
            walk.push(next);
            current = next;
        }
        self.issue("spec.steps", "dependency cycle");
        None
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".to_owned(),
        Value::Bool(flag) => format!("boolean `{flag}`"),
        Value::Number(number) => format!("number `{number}`"),
        Value::String(text) => format!("string `{}`", echo(text)),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("tagged value `{}`", tagged.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<String> {
        match Pipeline::from_yaml(text) {
            Err(SpecError::Invalid(issues)) => issues
                .0
                .into_iter()
                .map(|issue| format!("{}: {}", issue.path, issue.message))
                .collect(),
            other => panic!("expected an invalid spec, got {other:?}"),
        }
    }

    const HEADER: &str =
        "apiVersion: sextant.dev/v1beta1\nkind: Pipeline\nmetadata: {name: demo}\n";

    #[test]
    fn loads_the_issue_example_with_derived_dependencies() {
        let text = format!(
            "{HEADER}spec:
  params: [{{name: rows, default: \"100\"}}]
  steps:
    - name: prepare
      command: [python3, prepare.py, --rows, \"{{{{params.rows}}}}\"]
      outputs:
        params: [{{name: count, path: count.txt}}]
        artifacts: [{{name: data, path: data.csv}}]
    - name: train
      command: [python3, train.py, --data, \"{{{{steps.prepare.outputs.artifacts.data}}}}\"]
      when: \"{{{{steps.prepare.outputs.params.count}}}} > 0\"
      retry: {{limit: 2, backoffSeconds: 1}}
      timeoutSeconds: 600
    - name: report
      dependsOn: [train]
      withItems: [a, b]
      command: [echo, \"{{{{item}}}}\"]
"
        );
        let pipeline = Pipeline::from_yaml(&text).unwrap();
        assert_eq!(pipeline.steps[1].dependencies, vec![0]);
        assert_eq!(pipeline.steps[2].dependencies, vec![1]);
        assert_eq!(pipeline.topological_order, vec![0, 1, 2]);
        assert_eq!(pipeline.steps[1].retry.limit, 2);
        assert_eq!(pipeline.steps[1].timeout, Some(Duration::from_secs(600)));
        assert_eq!(
            pipeline.steps[2].items,
            Some(vec![Item::Text("a".into()), Item::Text("b".into())])
        );
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let found = issues(&format!(
            "{HEADER}spec:
  steps:
    - name: a
      command: [echo, \"{{{{params.nope}}}}\"]
    - name: a
      command: [echo]
    - name: c
      comand: [echo]
    - name: d
      command: [echo, \"{{{{steps.zz.outputs.params.p}}}}\"]
      when: \"x = 1\"
"
        ));
        assert!(
            found
                .iter()
                .any(|issue| issue.starts_with("spec.steps[2].comand: unknown field")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|issue| issue.starts_with("spec.steps[2].command: missing command")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|issue| issue.starts_with("spec.steps[3].when: bad condition `x = 1`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|issue| issue.starts_with("spec.steps[1].name: duplicate step name `a`")),
            "{found:?}"
        );
    }

    #[test]
    fn reports_unknown_references_after_the_structure_is_valid() {
        let found = issues(&format!(
            "{HEADER}spec:
  steps:
    - name: a
      command: [echo, \"{{{{params.nope}}}}\", \"{{{{item}}}}\"]
      dependsOn: [ghost]
    - name: b
      command: [echo, \"{{{{steps.a.outputs.params.p}}}}\", \"{{{{steps.zz.outputs.artifacts.x}}}}\"]
"
        ));
        assert_eq!(
            found,
            vec![
                "spec.steps[0].dependsOn[0]: unknown step `ghost`",
                "spec.steps[0].command[1]: `{{params.nope}}`: unknown parameter `nope` (not in spec.params)",
                "spec.steps[0].command[2]: `{{item}}` is only defined in a step with withItems",
                "spec.steps[1].command[1]: `{{steps.a.outputs.params.p}}`: step `a` declares no output parameter `p`",
                "spec.steps[1].command[2]: `{{steps.zz.outputs.artifacts.x}}`: unknown step `zz`",
            ]
        );
    }

    #[test]
    fn names_the_cycle() {
        let found = issues(&format!(
            "{HEADER}spec:
  steps:
    - {{name: a, command: [echo], dependsOn: [c]}}
    - {{name: b, command: [echo], dependsOn: [a]}}
    - {{name: c, command: [echo], dependsOn: [b]}}
    - {{name: d, command: [echo]}}
"
        ));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("dependency cycle: a -> c -> b -> a"),
            "{found:?}"
        );
    }

    #[test]
    fn rejects_bad_headers_outputs_and_items() {
        let found = issues(
            "apiVersion: v1\nkind: Job\nmetadata: {name: x}\nspec:
  steps:
    - name: a
      command: [echo, \"{{item.lr}}\"]
      withItems: [1, {lr: '0.1'}]
      outputs: {params: [{name: p, path: ../escape}]}
",
        );
        assert!(
            found
                .iter()
                .any(|issue| issue.starts_with("apiVersion: expected `sextant.dev/v1beta1`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|issue| issue.starts_with("kind: expected `Pipeline`")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|issue| issue.starts_with("spec.steps[0].outputs.params[0].path")),
            "{found:?}"
        );
    }

    #[test]
    fn resolves_params_with_defaults_and_overrides() {
        let pipeline = Pipeline::from_yaml(&format!(
            "{HEADER}spec:\n  params: [{{name: a, default: '1'}}, {{name: b}}]\n  steps: [{{name: s, command: [echo]}}]\n"
        ))
        .unwrap();
        let overrides = BTreeMap::from([("b".to_owned(), "x".to_owned())]);
        assert_eq!(
            pipeline.resolve_params(&overrides).unwrap(),
            BTreeMap::from([
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x".to_owned())
            ])
        );
        assert_eq!(
            pipeline.resolve_params(&BTreeMap::new()),
            Err(ParamError::Missing("b".into()))
        );
        let unknown = BTreeMap::from([("c".to_owned(), "x".to_owned())]);
        assert_eq!(
            pipeline.resolve_params(&unknown),
            Err(ParamError::Unknown("c".into()))
        );
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let policy = RetryPolicy {
            limit: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Some(Duration::from_secs(3)),
        };
        assert_eq!(policy.delay_before_retry(1), Duration::from_secs(1));
        assert_eq!(policy.delay_before_retry(2), Duration::from_secs(2));
        assert_eq!(policy.delay_before_retry(3), Duration::from_secs(3));
    }

    #[test]
    fn malformed_yaml_is_a_yaml_error() {
        assert!(matches!(
            Pipeline::from_yaml("spec: [unclosed"),
            Err(SpecError::Yaml(_))
        ));
    }
}
