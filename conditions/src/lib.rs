//! Trial success and failure conditions: Katib's GJSON paths evaluated on the JSON of a trial's
//! run object (a `batch/v1` Job, an Argo Workflow, a Kubeflow TFJob, any kind).
//!
//! A condition is parsed once into a typed path, so the controller refuses a bad one at
//! admission with the byte offset of the fault, and is then evaluated on each observed object.
//! [`default_conditions`] gives the conditions of the kinds that need none written.
//!
//! # Katib's rule
//! Katib's `GetDeployedJobStatus` (kubeflow/katib `pkg/controller.v1beta1/trial/util/job_util.go`)
//! marshals the run object to JSON and calls `gjson.Get(json, condition)` with tidwall/gjson
//! v1.14.1 (Katib's `go.mod`). It does not use `Result.Exists()`: a condition is met when the
//! result `IsObject()`, or `IsArray()` with `len(Array()) > 0`. So a string, number, boolean or
//! null result never meets a condition, whatever its value (`status.phase` is never met), and
//! neither does an empty array. The failure condition is evaluated first and the success
//! condition only when it is not met. When one is met, Katib unmarshals the object, or the
//! array's first element, into `{reason, message}` for the trial's status and fails the
//! reconcile when that does not unmarshal (say the first element is a string);
//! [`Condition::first_match`] returns that value. (Katib's `GetDeployedJobStatus`, in
//! `pkg/controller.v1beta1/trial/util/job_util.go`.)
//!
//! A query for all matches, `#(...)#`, on an array yields `[]` when nothing matches (gjson.go
//! `parseArray`, the `rp.query.all` branch), and `[]` is not met. So the Job default
//! `status.conditions.#(type=="Complete")#|#(status=="True")#` is not met by a running Job
//! (no `status.conditions`: the path does not exist), nor by conditions without `Complete`
//! (`[]`, then `[]|#(status=="True")#` is `[]`), nor by `Complete` with status `"False"`
//! (`[{..}]|#(status=="True")#` is `[]`); only `Complete` with status `"True"` yields a
//! non-empty array. A first-match query `#(...)` yields the element itself, so
//! `status.[@this].#(succeeded==1)` is met by an object (a case in Katib's `job_util_test.go`).
//!
//! # Supported GJSON
//! Semantics follow gjson v1.14.1 `gjson.go` (`Get`, `parseObject`, `parseObjectPath`,
//! `parseArray`, `parseArrayPath`, `parseQuery`, `queryMatches`, `parseSubSelectors`,
//! `splitPossiblePipe`, `execModifier`) and its `SYNTAX.md`; `%` follows tidwall/match v1.1.1.
//! - Keys separated by `.`; `\` makes the next character literal (`example\.com/phase`). On an
//!   array an all-digit key is an index (`conditions.0`); any other key finds nothing.
//! - `#`: an array's length; `#.rest` maps `rest` over the elements.
//! - Queries on an array: `#(key op value)` (first match) and `#(key op value)#` (all
//!   matches); `#(key)` tests that `key` exists; an empty key, `#(=="x")`, tests the element
//!   itself; the older `#[...]` works alike. The key is itself a path (`#(a.b=="x")`, indices,
//!   nested queries). Operators: `==` (or `=`), `!=`, `<`, `<=`, `>`, `>=`, `%` (like: `*` any
//!   run, `?` one character, `\` escapes) and `!%`. The value is a double-quoted JSON string or
//!   a bare token (`5`, `true`, `True`). As in gjson the value is text compared by the
//!   element's type: a string as text; a number with the text read as a number (unreadable
//!   text reads as 0); `true` and `false` against the text `true`/`false` (gjson orders
//!   `false` < `true`); objects, arrays and null never match. So `#(status==True)` matches
//!   the string `"True"` and `#(count=="5")` the number 5.
//! - `|` applies the rest to the result so far. It differs from `.` only after `#` and
//!   queries, where `.rest` maps over the elements (or applies to the first match) up to the
//!   next `|`, which then applies to the whole result.
//! - `@this` (the current value) and multipath arrays `[p1,p2]`, which collect the results of
//!   the paths that exist into a new array. `status.[@this]` is therefore `[status]`, a
//!   one-element array, which lets Katib's Argo example query an object:
//!   `status.[@this].#(phase=="Succeeded")#`. After a key, a `.` before `@` or `[` acts as `|`.
//!
//! gjson reads paths as text, and its quirks are kept because they decide verdicts: a pipe
//! runs even on a missing value when the component just before it was looked up (so
//! `missing.[@this]` is `[]`); a query or `#` applied to an object is a key lookup that finds
//! nothing (or the key `#`); `#(...)#.rest` with no match is `[]` and skips the pipes in
//! `rest`; and inside a mapped `rest` a `|` right after `.#` does not end the map.
//!
//! Refused with [`ConditionError::Unsupported`]: key wildcards `*` and `?`, object multipaths
//! `{...}`, literals `!...`, modifiers other than `@this` and modifier arguments, multipath
//! names `name:path`, the `~` operator, `null` and hexadecimal floating-point query values,
//! the `..` JSON Lines prefix, unescaped whitespace in keys, nesting deeper than 64 levels,
//! and the texts gjson misreads: `|`, `.@` or `.[` inside a query, an escaped `|` in a key,
//! and `.@` or `.[` after a key holding `\` escapes.
//!
//! # Known differences from gjson
//! A string value has no keys here, while gjson scans its raw text and may find some in a
//! string that holds JSON (`a|b` where `a` is the string `"{\"b\":1}"`): only a path that
//! goes on past a string value can tell. An object key spelled exactly like a query
//! (`#(a==1)`) is not looked up. `%` always finishes (gjson gives up as no match after 10,000
//! steps per subject character).

//!
//! # Checked against Go's gjson; why not the `gjson` crate
//! `tests/it/gjson_reference.rs` generates 20,000 conditions (Katib's defaults and random
//! paths of keys, indices, `#`, queries with every operator, `@this`, multipaths, `.` and `|`)
//! with documents (Job, Workflow and TFJob shapes, and random JSON), and compares verdicts
//! with Go's gjson, built from Debian's `golang-github-tidwall-gjson-dev` 1.14.4 by
//! `scripts/gjson-oracle`: they agree on every case. Katib pins 1.14.1; the three changes to
//! `gjson.go` since touch only what this subset refuses (`.@name` pipes only for a known
//! modifier, `@this` being one; modifier options after `:`; `.@` or `.[` after a key holding
//! `\` escapes), so on accepted conditions the two versions give the same verdicts. The `gjson` crate 0.8, the same
//! author's Rust port, disagrees with Go's gjson on about 0.7% of them (132 of 20,000), and
//! ours follows Go there, because Katib's verdicts are Go's. For example, on the document
//! `[]`, `#(status=="Complete")#.status|[@this]` is not met in Go (the unmatched all-query
//! yields `[]` and skips the pipes, see above) and is met by the crate; the same goes for
//! `#(0=True).type|[@this]|[@this]` and `1|phase|#|[@this].[@this]` on generated documents.
//! The crate also parses nothing at admission, so the byte-offset errors above would need a
//! parser of our own anyway. Decision: keep this evaluator; the crate stays a dev-dependency
//! whose disagreement count the test prints.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::Value;

/// How deep paths, path components and queries may nest; conditions in use have about five.
const MAX_DEPTH: usize = 64;

/// How many paths one condition may parse into; each map parses its rest twice.
const MAX_STEPS: usize = 4096;

/// Katib's default success condition of a `batch/v1` Job and of a TrainJob
/// (`DefaultJobSuccessCondition`, `DefaultTrainJobSuccessCondition` in kubeflow/katib
/// `pkg/apis/controller/experiments/v1beta1/constants.go`).
pub const JOB_SUCCESS: &str = r#"status.conditions.#(type=="Complete")#|#(status=="True")#"#;

/// Katib's default failure condition of a Job, a TrainJob and the Kubeflow training jobs.
pub const JOB_FAILURE: &str = r#"status.conditions.#(type=="Failed")#|#(status=="True")#"#;

/// Katib's default success condition of the Kubeflow training jobs
/// (`DefaultKubeflowJobSuccessCondition`).
pub const TRAINING_JOB_SUCCESS: &str =
    r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#;

/// The success condition of Katib's Argo example (`examples/v1beta1/argo/argo-workflow.yaml`).
pub const ARGO_SUCCESS: &str = r#"status.[@this].#(phase=="Succeeded")#"#;

/// The failure condition of Katib's Argo example; a Workflow in phase `Error` does not meet it.
pub const ARGO_FAILURE: &str = r#"status.[@this].#(phase=="Failed")#"#;

/// The success condition of Katib's Tekton example (`examples/v1beta1/tekton/pipeline-run.yaml`).
pub const TEKTON_SUCCESS: &str = r#"status.conditions.#(type=="Succeeded")#|#(status=="True")#"#;

/// The failure condition of Katib's Tekton example.
pub const TEKTON_FAILURE: &str = r#"status.conditions.#(type=="Succeeded")#|#(status=="False")#"#;

/// A trial's success or failure condition, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The condition as the user wrote it, for status messages and round trips.
    text: String,
    /// The parsed path, so evaluation never meets a syntax error.
    path: Path,
}

/// Why a condition does not parse; every variant carries the byte offset of the fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// A path, or a part of one that must name something, is empty: an empty condition,
    /// `a..b`, a trailing `.` or `|`, an empty multipath element.
    #[error("empty path at byte {offset}")]
    EmptyPath {
        /// Where the missing path should start.
        offset: usize,
    },
    /// A bracket or quote is never closed.
    #[error("unclosed `{open}` at byte {offset}")]
    Unclosed {
        /// The opening character.
        open: char,
        /// Where it opens.
        offset: usize,
    },
    /// A character that cannot stand where it does.
    #[error("unexpected `{found}` at byte {offset}: expected {expected}")]
    Unexpected {
        /// The character found.
        found: char,
        /// Where it was found.
        offset: usize,
        /// What may stand there.
        expected: &'static str,
    },
    /// A `\` with nothing after it.
    #[error("dangling `\\` at byte {offset}")]
    DanglingEscape {
        /// Where the backslash is.
        offset: usize,
    },
    /// A query whose operator or value is malformed.
    #[error("invalid query at byte {offset}: {reason}")]
    InvalidQuery {
        /// What is wrong.
        reason: &'static str,
        /// Where the fault starts.
        offset: usize,
    },
    /// Valid GJSON outside the subset Sextant evaluates (see the module documentation).
    #[error("unsupported GJSON at byte {offset}: {feature}")]
    Unsupported {
        /// The construct, and what to write instead where there is something.
        feature: String,
        /// Where it starts.
        offset: usize,
    },
}

/// Katib's default success and failure conditions for a trial kind, by apiVersion group and kind.
///
/// Katib itself defaults only Job, TFJob, PyTorchJob, XGBoostJob, MPIJob and TrainJob, by kind
/// alone (`setDefaultTrialTemplate` in kubeflow/katib
/// `pkg/apis/controller/experiments/v1beta1/experiment_defaults.go`). Sextant matches the group
/// too, adds the other training-operator kinds (MXJob, PaddleJob, JAXJob report the same
/// `Succeeded`/`Failed` conditions), and takes the Argo Workflow and Tekton PipelineRun
/// conditions from Katib's examples, where Katib requires them to be written. The version is
/// ignored: the conditions read only `status`, which keeps its shape across versions.
pub fn default_conditions(api_version: &str, kind: &str) -> Option<(&'static str, &'static str)> {
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match (group, kind) {
        ("batch", "Job") | ("trainer.kubeflow.org", "TrainJob") => Some((JOB_SUCCESS, JOB_FAILURE)),
        (
            "kubeflow.org",
            "TFJob" | "PyTorchJob" | "MPIJob" | "XGBoostJob" | "MXJob" | "PaddleJob" | "JAXJob",
        ) => Some((TRAINING_JOB_SUCCESS, JOB_FAILURE)),
        ("argoproj.io", "Workflow") => Some((ARGO_SUCCESS, ARGO_FAILURE)),
        ("tekton.dev", "PipelineRun") => Some((TEKTON_SUCCESS, TEKTON_FAILURE)),
        _ => None,
    }
}

// === impl Condition ===

impl Condition {
    /// Parses a condition, refusing syntax errors and GJSON outside the supported subset.
    pub fn parse(text: &str) -> Result<Condition, ConditionError> {
        let parser = Parser {
            text,
            bytes: text.as_bytes(),
            steps: Cell::new(0),
        };
        let path = parser.path(0, text.len(), 0)?;
        Ok(Condition {
            text: text.to_owned(),
            path,
        })
    }

    /// Whether the condition is met by `object`, by Katib's rule: the GJSON result is an
    /// object, or an array with at least one element.
    pub fn is_met(&self, object: &Value) -> bool {
        get(Some(object), &self.path).is_some_and(|result| match result.as_ref() {
            Value::Object(_) => true,
            Value::Array(items) => !items.is_empty(),
            _ => false,
        })
    }

    /// When the condition is met, the value Katib reads the trial's `reason` and `message`
    /// from: the object result itself, or the first element of an array result.
    ///
    /// Katib unmarshals it into a struct of string `condition`, `reason` and `message` fields
    /// and fails the reconcile, leaving the trial as it was, when that fails: unless it is an
    /// object whose fields, where present, are strings or null (or a string holding such an
    /// object's JSON, which gjson's `String()` unwraps).
    pub fn first_match(&self, object: &Value) -> Option<Value> {
        let result = get(Some(object), &self.path)?;
        match result.as_ref() {
            Value::Object(_) => Some(result.into_owned()),
            Value::Array(items) => items.first().cloned(),
            _ => None,
        }
    }

    /// The condition as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

// === impl ConditionError ===

impl ConditionError {
    /// The byte offset in the condition where the fault is.
    pub fn offset(&self) -> usize {
        match self {
            ConditionError::EmptyPath { offset }
            | ConditionError::Unclosed { offset, .. }
            | ConditionError::Unexpected { offset, .. }
            | ConditionError::DanglingEscape { offset }
            | ConditionError::InvalidQuery { offset, .. }
            | ConditionError::Unsupported { offset, .. } => *offset,
        }
    }
}

fn unsupported(feature: impl Into<String>, offset: usize) -> ConditionError {
    ConditionError::Unsupported {
        feature: feature.into(),
        offset,
    }
}

// === Path model ===

/// A GJSON path as gjson's `Get` receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Path {
    /// An object member, or an array element by index.
    Key { key: Key, next: Next },
    /// `@this`: the current value.
    This { next: Next },
    /// `[p1,p2,...]`: the results of the paths that exist, as an array.
    Multipath { subpaths: Vec<Path>, next: Next },
    /// `#`: an array's length, or with `.` a map over its elements.
    Count { next: ArrayNext },
    /// `#(...)` or `#(...)#`.
    Query { query: Query, next: ArrayNext },
}

/// What follows a key, `@this` or a multipath.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Next {
    End,
    /// `.rest`; `piper` when `rest` starts with `@`, `[` or `{`, where gjson treats the dot as
    /// a pipe after a key.
    Dot {
        rest: Box<Path>,
        piper: bool,
    },
    /// `|rest`: applied to the result so far, even to a missing one.
    Pipe(Box<Path>),
}

/// What follows `#` or a query.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ArrayNext {
    End,
    Pipe(Box<Path>),
    /// `.rest`.
    Map(Box<Map>),
}

/// `.rest` after `#` or a query, read both ways gjson reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Map {
    /// On an array: the part of `rest` applied to each element (or the first match), up to
    /// where gjson's `splitPossiblePipe` cuts the text.
    each: Path,
    /// On an array: the part after that cut, applied to the whole result.
    then: Option<Path>,
    /// On an object, where `#` and queries are mere keys: all of `rest`, as after a key.
    whole: Path,
    /// Whether the dot acts as a pipe when read as after a key.
    piper: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    /// The member name, `\` escapes removed.
    name: String,
    /// How gjson's `parseArrayPath`, which ignores escapes, reads the key on an array.
    on_array: OnArray,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnArray {
    Index(usize),
    /// Not an index: nothing found, though a `|` (and a dot acting as one) still runs.
    Missing {
        dot_pipes: bool,
    },
    /// The raw text holds an escaped `.`: gjson cuts the key there and finds nothing.
    Cut,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Query {
    /// The path read from each element; `None` compares the element itself.
    key: Option<Box<Path>>,
    /// `None` only tests that the key exists.
    test: Option<Test>,
    /// `#(...)#`: every match rather than the first.
    all: bool,
    /// How the query reads on an object, where gjson's `parseObjectPath` takes its text as a key.
    on_object: OnObject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnObject {
    /// Nothing found, though a `|` (and a dot acting as one) still runs.
    MissingKey { dot_pipes: bool },
    /// The query text holds a `.`: gjson cuts the key there and finds nothing.
    Cut,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Test {
    Compare {
        op: Comparison,
        value: String,
    },
    Like {
        pattern: Vec<PatternToken>,
        negated: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatternToken {
    /// `*`: any run of characters.
    Star,
    /// `?`: one character.
    One,
    Literal(char),
}

// === Parser ===

/// Parses ranges of one condition; every position is a byte offset into the whole condition.
struct Parser<'t> {
    text: &'t str,
    bytes: &'t [u8],
    /// Paths parsed so far: a mapped rest is parsed twice, so nested maps must stay bounded.
    steps: Cell<usize>,
}

fn is_piper(byte: u8) -> bool {
    matches!(byte, b'@' | b'[' | b'{')
}

impl Parser<'_> {
    /// Parses `start..end` as a path in gjson's `Get` position.
    fn path(&self, start: usize, end: usize, depth: usize) -> Result<Path, ConditionError> {
        self.steps.set(self.steps.get() + 1);
        if depth > MAX_DEPTH || self.steps.get() > MAX_STEPS {
            return Err(unsupported(
                format!("a condition nesting more than {MAX_DEPTH} path components or maps"),
                start,
            ));
        }
        if start >= end {
            return Err(ConditionError::EmptyPath { offset: start });
        }
        match self.bytes[start] {
            b'@' => self.modifier(start, end, depth),
            b'[' => self.multipath(start, end, depth),
            b'{' => Err(unsupported("object multipath `{...}`", start)),
            b'!' => Err(unsupported("JSON literal `!...`", start)),
            b'.' if start == 0 && self.bytes.get(1) == Some(&b'.') => {
                Err(unsupported("JSON Lines prefix `..`", start))
            }
            b'.' | b'|' => Err(ConditionError::EmptyPath { offset: start }),
            b'#' => self.count_or_query(start, end, depth),
            _ => self.key(start, end, depth),
        }
    }

    /// Parses what follows a key, `@this` or a multipath: the end, `.rest` or `|rest`.
    fn next(
        &self,
        at: usize,
        end: usize,
        depth: usize,
        expected: &'static str,
    ) -> Result<Next, ConditionError> {
        if at >= end {
            return Ok(Next::End);
        }
        match self.bytes[at] {
            b'|' => Ok(Next::Pipe(Box::new(self.path(at + 1, end, depth + 1)?))),
            b'.' => {
                let piper = at + 1 < end && is_piper(self.bytes[at + 1]);
                let rest = self.path(at + 1, end, depth + 1)?;
                Ok(Next::Dot {
                    rest: Box::new(rest),
                    piper,
                })
            }
            _ => Err(self.unexpected(at, expected)),
        }
    }

    /// Parses what follows `#` or a query. A `.rest` is parsed whole, for objects, and cut
    /// where gjson's `splitPossiblePipe` cuts it, for arrays.
    fn array_next(
        &self,
        at: usize,
        end: usize,
        depth: usize,
        expected: &'static str,
    ) -> Result<ArrayNext, ConditionError> {
        if at >= end {
            return Ok(ArrayNext::End);
        }
        match self.bytes[at] {
            b'|' => Ok(ArrayNext::Pipe(Box::new(self.path(
                at + 1,
                end,
                depth + 1,
            )?))),
            b'.' => {
                let rest = at + 1;
                let piper = rest < end && is_piper(self.bytes[rest]);
                let whole = self.path(rest, end, depth + 1)?;
                let (each, then) = match self.split_possible_pipe(rest, end) {
                    Some(pipe) => (
                        self.path(rest, pipe, depth + 1)?,
                        Some(self.path(pipe + 1, end, depth + 1)?),
                    ),
                    None => (whole.clone(), None),
                };
                Ok(ArrayNext::Map(Box::new(Map {
                    each,
                    then,
                    whole,
                    piper,
                })))
            }
            _ => Err(self.unexpected(at, expected)),
        }
    }

    /// Where gjson v1.14.1's `splitPossiblePipe` cuts a mapped rest: at the first `|` outside
    /// escapes and `.#(...)` queries, except that the character right after a `.#` is skipped.
    fn split_possible_pipe(&self, start: usize, end: usize) -> Option<usize> {
        let mut at = start;
        while at < end {
            match self.bytes[at] {
                b'\\' => at += 1,
                b'|' => return Some(at),
                b'.' if at + 1 < end && self.bytes[at + 1] == b'#' => {
                    at += 2;
                    if at < end && matches!(self.bytes[at], b'(' | b'[') {
                        at = self.balanced_end(at, end);
                    }
                }
                _ => {}
            }
            at += 1;
        }
        None
    }

    /// The bracket closing the one at `open` (or `end`), counting only that kind of bracket
    /// and skipping strings, as `splitPossiblePipe` does.
    fn balanced_end(&self, open: usize, end: usize) -> usize {
        let (opening, closing_byte) = (self.bytes[open], closing(self.bytes[open]));
        let mut nesting = 1usize;
        let mut at = open + 1;
        while at < end {
            match self.bytes[at] {
                b'\\' => at += 1,
                b'"' => {
                    at += 1;
                    while at < end && self.bytes[at] != b'"' {
                        if self.bytes[at] == b'\\' {
                            at += 1;
                        }
                        at += 1;
                    }
                }
                byte if byte == opening => nesting += 1,
                byte if byte == closing_byte => {
                    nesting -= 1;
                    if nesting == 0 {
                        return at;
                    }
                }
                _ => {}
            }
            at += 1;
        }
        at
    }

    /// Parses `@this`, the only modifier supported.
    fn modifier(&self, start: usize, end: usize, depth: usize) -> Result<Path, ConditionError> {
        let name_end = (start + 1..end)
            .find(|&at| matches!(self.bytes[at], b'.' | b'|' | b':'))
            .unwrap_or(end);
        let name = &self.text[start + 1..name_end];
        if name.is_empty() {
            return Err(unsupported("`@` without a modifier name", start));
        }
        if name != "this" {
            return Err(unsupported(
                format!("modifier `@{name}` (only `@this` is supported)"),
                start,
            ));
        }
        if name_end < end && self.bytes[name_end] == b':' {
            return Err(unsupported("modifier arguments", name_end));
        }
        let next = self.next(name_end, end, depth, "`.`, `|` or the end after `@this`")?;
        Ok(Path::This { next })
    }

    /// Parses a multipath array `[p1,p2,...]`, split as gjson's `parseSubSelectors` splits it.
    fn multipath(&self, start: usize, end: usize, depth: usize) -> Result<Path, ConditionError> {
        let mut open_brackets = vec![(b'[', start)];
        let mut subpaths = Vec::new();
        let mut element_start = start + 1;
        let mut at = start + 1;
        let close = loop {
            if at >= end {
                let (open, offset) = open_brackets.last().copied().unwrap_or((b'[', start));
                return Err(ConditionError::Unclosed {
                    open: char::from(open),
                    offset,
                });
            }
            match self.bytes[at] {
                b'\\' => at += 1,
                b'"' => at = self.string_end(at, end)?,
                open @ (b'[' | b'(' | b'{') => open_brackets.push((open, at)),
                close @ (b']' | b')' | b'}') => match open_brackets.pop() {
                    Some((open, _)) if closing(open) == close => {
                        if open_brackets.is_empty() {
                            break at;
                        }
                    }
                    _ => {
                        return Err(
                            self.unexpected(at, "the bracket closing the one opened before it")
                        );
                    }
                },
                b',' if open_brackets.len() == 1 => {
                    subpaths.push(self.path(element_start, at, depth + 1)?);
                    element_start = at + 1;
                }
                b':' if open_brackets.len() == 1 => {
                    return Err(unsupported("multipath names `name:path`", at));
                }
                _ => {}
            }
            at += 1;
        };
        subpaths.push(self.path(element_start, close, depth + 1)?);
        let next = self.next(close + 1, end, depth, "`.`, `|` or the end after `]`")?;
        Ok(Path::Multipath { subpaths, next })
    }

    /// Parses `#` or a query, and what follows it.
    fn count_or_query(
        &self,
        start: usize,
        end: usize,
        depth: usize,
    ) -> Result<Path, ConditionError> {
        if start + 1 >= end || matches!(self.bytes[start + 1], b'.' | b'|') {
            let next = self.array_next(start + 1, end, depth, "`.`, `|` or the end after `#`")?;
            return Ok(Path::Count { next });
        }
        if !matches!(self.bytes[start + 1], b'(' | b'[') {
            return Err(self.unexpected(start + 1, "`.`, `|`, `(` or the end after `#`"));
        }
        let (query, after) = self.query(start, end, depth)?;
        let next = self.array_next(after, end, depth, "`.`, `|` or the end after a query")?;
        Ok(Path::Query { query, next })
    }

    /// Parses an object key, unescaping `\`; it ends at an unescaped `.` or `|`.
    fn key(&self, start: usize, end: usize, depth: usize) -> Result<Path, ConditionError> {
        let mut name = String::new();
        let mut escaped = false;
        let mut at = start;
        while at < end {
            let character = self.char_at(at);
            match character {
                '.' | '|' => break,
                '\\' => {
                    if at + 1 >= end {
                        return Err(ConditionError::DanglingEscape { offset: at });
                    }
                    let literal = self.char_at(at + 1);
                    name.push(literal);
                    escaped = true;
                    at += 1 + literal.len_utf8();
                    continue;
                }
                '*' | '?' => {
                    return Err(unsupported(
                        format!(
                            "wildcard `{character}` in a key (write `\\{character}` to match it)"
                        ),
                        at,
                    ));
                }
                _ if character.is_whitespace() || character.is_control() => {
                    return Err(unsupported(
                        "whitespace or a control character in a key (escape it with `\\` if the key holds it)",
                        at,
                    ));
                }
                _ => name.push(character),
            }
            at += character.len_utf8();
        }
        if escaped && at + 1 < end && self.bytes[at] == b'.' && is_piper(self.bytes[at + 1]) {
            return Err(unsupported(
                "`.@`, `.[` or `.{` after a key with `\\` escapes (gjson v1.14.1 drops what follows; write `|` instead)",
                at,
            ));
        }
        let key = Key {
            name,
            on_array: self.key_on_array(start, at, end)?,
        };
        let next = self.next(at, end, depth, "`.`, `|` or the end")?;
        Ok(Path::Key { key, next })
    }

    /// Reads the raw key text `start..key_end` as gjson's `parseArrayPath` does on an array.
    fn key_on_array(
        &self,
        start: usize,
        key_end: usize,
        end: usize,
    ) -> Result<OnArray, ConditionError> {
        let mut has_hash = false;
        for at in start..key_end {
            match self.bytes[at] {
                b'|' => {
                    return Err(unsupported(
                        "escaped `|` in a key (gjson v1.14.1 reads it as a pipe on arrays)",
                        at,
                    ));
                }
                b'.' if !has_hash && at + 1 < end && is_piper(self.bytes[at + 1]) => {
                    return Err(unsupported(
                        "escaped `.` before `@`, `[` or `{` in a key (gjson v1.14.1 reads it as a pipe on arrays)",
                        at,
                    ));
                }
                b'.' => return Ok(OnArray::Cut),
                b'#' => has_hash = true,
                _ => {}
            }
        }
        let raw = &self.bytes[start..key_end];
        if raw.iter().all(u8::is_ascii_digit) {
            // gjson's `parseUint` wraps on overflow and `int` conversion may turn it negative.
            let wrapped = raw.iter().fold(0u64, |number, digit| {
                number
                    .wrapping_mul(10)
                    .wrapping_add(u64::from(digit - b'0'))
            });
            if let Ok(index) = usize::try_from(i64::from_ne_bytes(wrapped.to_ne_bytes())) {
                return Ok(OnArray::Index(index));
            }
        }
        Ok(OnArray::Missing {
            dot_pipes: !has_hash,
        })
    }

    /// Parses `#(...)`, `#(...)#` or the older `#[...]`, scanning as gjson's `parseQuery` does:
    /// the operator is the first of `!=<>%` at the query's own level.
    fn query(
        &self,
        start: usize,
        end: usize,
        depth: usize,
    ) -> Result<(Query, usize), ConditionError> {
        let open = self.bytes[start + 1];
        let mut nesting = 1usize;
        let mut operator_at = None;
        let mut at = start + 2;
        let close = loop {
            if at >= end {
                return Err(ConditionError::Unclosed {
                    open: char::from(open),
                    offset: start + 1,
                });
            }
            let byte = self.bytes[at];
            if nesting == 1
                && operator_at.is_none()
                && matches!(byte, b'!' | b'=' | b'<' | b'>' | b'%')
            {
                operator_at = Some(at);
            } else {
                match byte {
                    b'\\' => at += 1,
                    b'[' | b'(' => nesting += 1,
                    b']' | b')' => {
                        nesting -= 1;
                        if nesting == 0 {
                            break at;
                        }
                    }
                    b'"' => at = self.string_end(at, end)?,
                    _ => {}
                }
            }
            at += 1;
        };
        if self.bytes[close] != closing(open) {
            return Err(self.unexpected(close, "the bracket closing the query"));
        }
        let all = close + 1 < end && self.bytes[close + 1] == b'#';
        let after = if all { close + 2 } else { close + 1 };
        let on_object = self.query_on_object(start, after, end)?;
        let (key_start, key_end) = self.trim(start + 2, operator_at.unwrap_or(close));
        let test = match operator_at {
            Some(operator_at) => Some(self.test(operator_at, close)?),
            None if key_start == key_end => {
                return Err(ConditionError::InvalidQuery {
                    reason: "empty query",
                    offset: start,
                });
            }
            None => None,
        };
        let key = if key_start == key_end {
            None
        } else {
            Some(Box::new(self.path(key_start, key_end, depth + 1)?))
        };
        let query = Query {
            key,
            test,
            all,
            on_object,
        };
        Ok((query, after))
    }

    /// Reads the query text `start..query_end` as gjson's `parseObjectPath` does on an object,
    /// where it is a key cut at the first `.` or `|`, even inside quotes.
    fn query_on_object(
        &self,
        start: usize,
        query_end: usize,
        end: usize,
    ) -> Result<OnObject, ConditionError> {
        let mut escaped = false;
        let mut at = start;
        while at < query_end {
            match self.bytes[at] {
                b'|' => {
                    return Err(unsupported(
                        "`|` inside a query (gjson v1.14.1 reads it as a pipe when the query meets an object)",
                        at,
                    ));
                }
                b'.' if !escaped && at + 1 < end && is_piper(self.bytes[at + 1]) => {
                    return Err(unsupported(
                        "`.@`, `.[` or `.{` inside a query (gjson v1.14.1 reads it as a pipe when the query meets an object)",
                        at,
                    ));
                }
                b'.' => return Ok(OnObject::Cut),
                b'\\' => {
                    escaped = true;
                    at += 1;
                }
                _ => {}
            }
            at += 1;
        }
        Ok(OnObject::MissingKey {
            dot_pipes: !escaped,
        })
    }

    /// Parses the operator and value of a query, `start..end` running from the operator to
    /// the closing bracket.
    fn test(&self, start: usize, end: usize) -> Result<Test, ConditionError> {
        let (start, end) = self.trim(start, end);
        let text = &self.text[start..end];
        let operators: [(&str, Option<Comparison>); 9] = [
            ("==", Some(Comparison::Eq)),
            ("!=", Some(Comparison::Ne)),
            ("<=", Some(Comparison::Le)),
            (">=", Some(Comparison::Ge)),
            ("!%", None),
            ("=", Some(Comparison::Eq)),
            ("<", Some(Comparison::Lt)),
            (">", Some(Comparison::Gt)),
            ("%", None),
        ];
        let Some((symbol, comparison)) = operators
            .into_iter()
            .find(|(symbol, _)| text.starts_with(symbol))
        else {
            return Err(ConditionError::InvalidQuery {
                reason: "unknown operator",
                offset: start,
            });
        };
        let (value_start, value_end) = self.trim(start + symbol.len(), end);
        if value_start == value_end {
            return Err(ConditionError::InvalidQuery {
                reason: "missing value after the operator",
                offset: value_start,
            });
        }
        if self.bytes[value_start] == b'~' {
            return Err(unsupported("the `~` boolean operator", value_start));
        }
        let value = if self.bytes[value_start] == b'"' {
            self.quoted(value_start, value_end)?
        } else {
            self.bare(value_start, value_end)?
        };
        if value.starts_with('~') {
            return Err(unsupported("the `~` boolean operator", value_start));
        }
        // Go reads `0x1p4` as 16 where Rust reads nothing; other number syntax reads alike.
        let unsigned = value.trim_start_matches(['+', '-']);
        if (unsigned.starts_with("0x") || unsigned.starts_with("0X"))
            && unsigned.contains(['p', 'P'])
        {
            return Err(unsupported(
                "hexadecimal floating-point query value",
                value_start,
            ));
        }
        match comparison {
            Some(op) => Ok(Test::Compare { op, value }),
            None => {
                let pattern = like_pattern(&value).ok_or(ConditionError::DanglingEscape {
                    offset: value_start,
                })?;
                Ok(Test::Like {
                    pattern,
                    negated: symbol == "!%",
                })
            }
        }
    }

    /// Reads a double-quoted query value, a JSON string filling `start..end`.
    fn quoted(&self, start: usize, end: usize) -> Result<String, ConditionError> {
        let mut value = String::new();
        let mut characters = self.text[start + 1..end]
            .char_indices()
            .map(|(index, character)| (start + 1 + index, character));
        while let Some((at, character)) = characters.next() {
            match character {
                '"' => {
                    if at + 1 != end {
                        return Err(ConditionError::InvalidQuery {
                            reason: "text after the quoted value",
                            offset: at + 1,
                        });
                    }
                    return Ok(value);
                }
                '\\' => {
                    let escaped = match characters.next() {
                        Some((_, '"')) => '"',
                        Some((_, '\\')) => '\\',
                        Some((_, '/')) => '/',
                        Some((_, 'b')) => '\u{8}',
                        Some((_, 'f')) => '\u{c}',
                        Some((_, 'n')) => '\n',
                        Some((_, 'r')) => '\r',
                        Some((_, 't')) => '\t',
                        Some((_, 'u')) => {
                            unicode_escape(&mut characters).ok_or(ConditionError::InvalidQuery {
                                reason: "invalid `\\u` escape",
                                offset: at,
                            })?
                        }
                        _ => {
                            return Err(ConditionError::InvalidQuery {
                                reason: "invalid escape in a string",
                                offset: at,
                            });
                        }
                    };
                    value.push(escaped);
                }
                _ if character.is_control() => {
                    return Err(ConditionError::InvalidQuery {
                        reason: "control character in a string",
                        offset: at,
                    });
                }
                _ => value.push(character),
            }
        }
        Err(ConditionError::Unclosed {
            open: '"',
            offset: start,
        })
    }

    /// Reads an unquoted query value: a number, `true`, `false` or a word.
    fn bare(&self, start: usize, end: usize) -> Result<String, ConditionError> {
        let value = &self.text[start..end];
        if !value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'+' | b'-'))
        {
            return Err(ConditionError::InvalidQuery {
                reason: "a query value is a double-quoted string, a number, true or false",
                offset: start,
            });
        }
        if value == "null" {
            return Err(unsupported(
                "`null` query value (gjson compares it as the text \"null\" and never matches a JSON null)",
                start,
            ));
        }
        Ok(value.to_owned())
    }

    /// The index of the quote closing the string opened at `start`.
    fn string_end(&self, start: usize, end: usize) -> Result<usize, ConditionError> {
        let mut at = start + 1;
        while at < end {
            match self.bytes[at] {
                b'\\' => at += 2,
                b'"' => return Ok(at),
                _ => at += 1,
            }
        }
        Err(ConditionError::Unclosed {
            open: '"',
            offset: start,
        })
    }

    /// `start..end` without leading and trailing spaces and control bytes, as gjson's `trim`.
    fn trim(&self, mut start: usize, mut end: usize) -> (usize, usize) {
        while start < end && self.bytes[start] <= b' ' {
            start += 1;
        }
        while end > start && self.bytes[end - 1] <= b' ' {
            end -= 1;
        }
        (start, end)
    }

    fn unexpected(&self, at: usize, expected: &'static str) -> ConditionError {
        ConditionError::Unexpected {
            found: self.char_at(at),
            offset: at,
            expected,
        }
    }

    /// The character starting at byte `at`, which callers keep on a character boundary.
    fn char_at(&self, at: usize) -> char {
        self.text[at..].chars().next().unwrap_or('\0')
    }
}

fn closing(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'{' => b'}',
        _ => b']',
    }
}

/// Reads the four hex digits after `\u`, and a following low surrogate when they are a high one.
fn unicode_escape(characters: &mut impl Iterator<Item = (usize, char)>) -> Option<char> {
    fn four_hex(characters: &mut impl Iterator<Item = (usize, char)>) -> Option<u32> {
        (0..4).try_fold(0, |code, _| {
            Some(code * 16 + characters.next()?.1.to_digit(16)?)
        })
    }
    let first = four_hex(characters)?;
    if !(0xD800..0xDC00).contains(&first) {
        return char::from_u32(first);
    }
    let (Some((_, '\\')), Some((_, 'u'))) = (characters.next(), characters.next()) else {
        return None;
    };
    let second = four_hex(characters)?;
    if !(0xDC00..0xE000).contains(&second) {
        return None;
    }
    char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
}

/// Tokenizes a `%` pattern; `None` when it ends in a lone `\`, which tidwall/match treats
/// inconsistently.
fn like_pattern(pattern: &str) -> Option<Vec<PatternToken>> {
    let mut tokens = Vec::new();
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        tokens.push(match character {
            '*' => PatternToken::Star,
            '?' => PatternToken::One,
            '\\' => PatternToken::Literal(characters.next()?),
            _ => PatternToken::Literal(character),
        });
    }
    Some(tokens)
}

// === Evaluation ===

/// A gjson result: `None` does not exist (gjson's `""`); JSON null exists.
type Found<'v> = Option<Cow<'v, Value>>;

/// gjson's `Get`.
fn get<'v>(input: Option<&'v Value>, path: &Path) -> Found<'v> {
    match path {
        Path::This { next } => after_get(input.map(Cow::Borrowed), next),
        Path::Multipath { subpaths, next } => {
            let items = subpaths
                .iter()
                .filter_map(|subpath| get(input, subpath))
                .map(Cow::into_owned)
                .collect();
            after_get(Some(Cow::Owned(Value::Array(items))), next)
        }
        Path::Key { key, next } => match input {
            Some(Value::Object(members)) => after_key(members.get(&key.name), true, next),
            Some(Value::Array(items)) => match key.on_array {
                OnArray::Index(index) => after_key(items.get(index), true, next),
                OnArray::Missing { dot_pipes } => after_key(None, dot_pipes, next),
                OnArray::Cut => None,
            },
            _ => None,
        },
        Path::Count { next } => match input {
            Some(Value::Object(members)) => after_object_key(members.get("#"), true, next),
            Some(Value::Array(items)) => {
                let length = Some(Cow::Owned(Value::from(items.len())));
                match next {
                    ArrayNext::End => length,
                    ArrayNext::Pipe(rest) => get_found(length, rest),
                    ArrayNext::Map(map) => map.then_on(map.each_on(items.iter())),
                }
            }
            _ => None,
        },
        Path::Query { query, next } => match input {
            Some(Value::Array(items)) => query.run(items, next),
            Some(Value::Object(_)) => match query.on_object {
                OnObject::MissingKey { dot_pipes } => after_object_key(None, dot_pipes, next),
                OnObject::Cut => None,
            },
            _ => None,
        },
    }
}

fn get_found<'v>(input: Found<'v>, path: &Path) -> Found<'v> {
    match input {
        Some(Cow::Owned(value)) => {
            get(Some(&value), path).map(|result| Cow::Owned(result.into_owned()))
        }
        Some(Cow::Borrowed(value)) => get(Some(value), path),
        None => get(None, path),
    }
}

/// After `@this` or a multipath gjson hands the rest, after `.` or `|` alike, to a new `Get`.
fn after_get<'v>(value: Found<'v>, next: &Next) -> Found<'v> {
    match next {
        Next::End => value,
        Next::Dot { rest, .. } | Next::Pipe(rest) => get_found(value, rest),
    }
}

/// After a key looked up at a level gjson reached: `.` descends only into a found value,
/// while `|`, and a `.` acting as one, applies even to nothing.
fn after_key<'v>(found: Option<&'v Value>, dot_pipes: bool, next: &Next) -> Found<'v> {
    match next {
        Next::End => found.map(Cow::Borrowed),
        Next::Pipe(rest) => get(found, rest),
        Next::Dot { rest, piper } if *piper && dot_pipes => get(found, rest),
        Next::Dot { rest, .. } => found.and_then(|value| get(Some(value), rest)),
    }
}

/// `#` or a query on an object, where gjson takes it for a key.
fn after_object_key<'v>(found: Option<&'v Value>, dot_pipes: bool, next: &ArrayNext) -> Found<'v> {
    match next {
        ArrayNext::End => found.map(Cow::Borrowed),
        ArrayNext::Pipe(rest) => get(found, rest),
        ArrayNext::Map(map) if map.piper && dot_pipes => get(found, &map.whole),
        ArrayNext::Map(map) => found.and_then(|value| get(Some(value), &map.whole)),
    }
}

// === impl Map ===

impl Map {
    /// `each` on every value; the results that exist, as an array.
    fn each_on<'v>(&self, values: impl Iterator<Item = &'v Value>) -> Found<'v> {
        let results = values
            .filter_map(|value| get(Some(value), &self.each))
            .map(Cow::into_owned)
            .collect();
        Some(Cow::Owned(Value::Array(results)))
    }

    /// `then` on the result of `each`, even a missing one.
    fn then_on<'v>(&self, result: Found<'v>) -> Found<'v> {
        match &self.then {
            Some(then) => get_found(result, then),
            None => result,
        }
    }
}

// === impl Query ===

impl Query {
    /// The query on an array, and what follows it (gjson's `parseArray` and `procQuery`).
    fn run<'v>(&self, items: &'v [Value], next: &ArrayNext) -> Found<'v> {
        let mut matches = items.iter().filter(|item| self.matches(item));
        if !self.all {
            let first = matches.next();
            return match next {
                ArrayNext::End => first.map(Cow::Borrowed),
                ArrayNext::Pipe(rest) => get(first, rest),
                ArrayNext::Map(map) => {
                    let item = first?;
                    map.then_on(get(Some(item), &map.each))
                }
            };
        }
        let matches: Vec<&Value> = matches.collect();
        let collected = || {
            Some(Cow::Owned(Value::Array(
                matches.iter().map(|item| (*item).clone()).collect(),
            )))
        };
        match next {
            ArrayNext::End => collected(),
            ArrayNext::Pipe(rest) => get_found(collected(), rest),
            // gjson cuts `then` off only on a match, so without one it never runs.
            ArrayNext::Map(_) if matches.is_empty() => collected(),
            ArrayNext::Map(map) => map.then_on(map.each_on(matches.iter().copied())),
        }
    }

    /// Whether an array element matches (gjson's `procQuery` and `queryMatches`).
    fn matches(&self, element: &Value) -> bool {
        let subject = match (element, &self.key) {
            (Value::Object(_) | Value::Array(_), Some(key)) => get(Some(element), key),
            // gjson's `Get(element, "")` looks up the empty key.
            (Value::Object(members), None) => members.get("").map(Cow::Borrowed),
            (Value::Array(_), None) => None,
            (_, Some(_)) => None,
            (_, None) => Some(Cow::Borrowed(element)),
        };
        match (subject, &self.test) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(subject), Some(test)) => test.matches(&subject),
        }
    }
}

impl Test {
    fn matches(&self, subject: &Value) -> bool {
        match (self, subject) {
            (Test::Compare { op, value }, Value::String(text)) => {
                let ordering = text.as_str().cmp(value.as_str());
                match op {
                    Comparison::Eq => ordering.is_eq(),
                    Comparison::Ne => ordering.is_ne(),
                    Comparison::Lt => ordering.is_lt(),
                    Comparison::Le => ordering.is_le(),
                    Comparison::Gt => ordering.is_gt(),
                    Comparison::Ge => ordering.is_ge(),
                }
            }
            (Test::Compare { op, value }, Value::Number(number)) => {
                let Some(number) = number.as_f64() else {
                    return false;
                };
                let wanted = go_parse_float(value);
                match op {
                    Comparison::Eq => number == wanted,
                    Comparison::Ne => number != wanted,
                    Comparison::Lt => number < wanted,
                    Comparison::Le => number <= wanted,
                    Comparison::Gt => number > wanted,
                    Comparison::Ge => number >= wanted,
                }
            }
            (Test::Compare { op, value }, Value::Bool(true)) => match op {
                Comparison::Eq => value == "true",
                Comparison::Ne => value != "true",
                Comparison::Gt => value == "false",
                Comparison::Ge => true,
                Comparison::Lt | Comparison::Le => false,
            },
            (Test::Compare { op, value }, Value::Bool(false)) => match op {
                Comparison::Eq => value == "false",
                Comparison::Ne => value != "false",
                Comparison::Lt => value == "true",
                Comparison::Le => true,
                Comparison::Gt | Comparison::Ge => false,
            },
            (Test::Like { pattern, negated }, Value::String(text)) => {
                like(text, pattern) != *negated
            }
            _ => false,
        }
    }
}

/// Go's `strconv.ParseFloat` as gjson uses it: 0 on a syntax error. Rust reads decimal
/// syntax alike, and `inf`, `infinity` and `nan`, but Go refuses a signed `nan`.
fn go_parse_float(text: &str) -> f64 {
    let signed_nan = text
        .strip_prefix(['+', '-'])
        .is_some_and(|unsigned| unsigned.eq_ignore_ascii_case("nan"));
    if signed_nan {
        return 0.0;
    }
    text.parse().unwrap_or(0.0)
}

/// Glob match by characters, backtracking only to the last `*`: at most subject × pattern steps.
fn like(subject: &str, pattern: &[PatternToken]) -> bool {
    let subject: Vec<char> = subject.chars().collect();
    let (mut subject_at, mut pattern_at) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while subject_at < subject.len() {
        match pattern.get(pattern_at) {
            Some(PatternToken::Star) => {
                last_star = Some((pattern_at + 1, subject_at));
                pattern_at += 1;
            }
            Some(PatternToken::One) => {
                subject_at += 1;
                pattern_at += 1;
            }
            Some(PatternToken::Literal(character)) if *character == subject[subject_at] => {
                subject_at += 1;
                pattern_at += 1;
            }
            _ => match last_star {
                Some((after_star, star_subject_at)) => {
                    pattern_at = after_star;
                    subject_at = star_subject_at + 1;
                    last_star = Some((after_star, subject_at));
                }
                None => return false,
            },
        }
    }
    pattern[pattern_at..]
        .iter()
        .all(|token| *token == PatternToken::Star)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn condition(text: &str) -> Condition {
        Condition::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    /// The raw gjson result, for checking path semantics apart from Katib's rule.
    fn eval(text: &str, object: &Value) -> Option<Value> {
        get(Some(object), &condition(text).path).map(Cow::into_owned)
    }

    fn parse_error(text: &str) -> ConditionError {
        match Condition::parse(text) {
            Ok(parsed) => panic!("{text} parsed as {parsed:?}"),
            Err(error) => error,
        }
    }

    fn defaults(api_version: &str, kind: &str) -> (Condition, Condition) {
        let (success, failure) = default_conditions(api_version, kind)
            .unwrap_or_else(|| panic!("no defaults for {kind}"));
        (condition(success), condition(failure))
    }

    /// Failure first, then success, as Katib's `GetDeployedJobStatus`.
    fn verdict(api_version: &str, kind: &str, object: &Value) -> &'static str {
        let (success, failure) = defaults(api_version, kind);
        if failure.is_met(object) {
            "failed"
        } else if success.is_met(object) {
            "succeeded"
        } else {
            "running"
        }
    }

    // === fixtures ===

    fn job(status: Value) -> Value {
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "random-exp-x7k2", "namespace": "kubeflow",
                         "annotations": {"example.com/phase": "done"}},
            "spec": {"backoffLimit": 6, "completions": 1, "parallelism": 1},
            "status": status,
        })
    }

    fn running_job() -> Value {
        job(
            json!({"active": 1, "ready": 1, "startTime": "2024-05-01T10:00:00Z",
                   "terminating": 0, "uncountedTerminatedPods": {}}),
        )
    }

    fn complete_job() -> Value {
        job(json!({
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods",
                 "lastProbeTime": "2024-05-01T10:05:00Z", "lastTransitionTime": "2024-05-01T10:05:00Z"},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods",
                 "lastProbeTime": "2024-05-01T10:05:00Z", "lastTransitionTime": "2024-05-01T10:05:00Z"}
            ],
            "startTime": "2024-05-01T10:00:00Z", "completionTime": "2024-05-01T10:05:00Z",
            "succeeded": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}
        }))
    }

    fn failed_job() -> Value {
        job(json!({
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}
            ],
            "failed": 7, "startTime": "2024-05-01T10:00:00Z"
        }))
    }

    fn workflow(phase: &str) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "katib-argo-workflow-abc"},
            "spec": {"entrypoint": "hp-workflow"},
            "status": {"phase": phase, "startedAt": "2024-05-01T10:00:00Z", "progress": "1/2",
                       "message": format!("workflow is {phase}"),
                       "nodes": {"katib-argo-workflow-abc": {"phase": phase, "type": "Steps"}}}
        })
    }

    fn tfjob(conditions: Value) -> Value {
        json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "TFJob",
            "metadata": {"name": "tfjob-mnist-x"},
            "status": {"conditions": conditions,
                       "replicaStatuses": {"Worker": {"active": 2}}, "startTime": "2024-05-01T10:00:00Z"}
        })
    }

    fn pipeline_run(status: &str, reason: &str) -> Value {
        json!({
            "apiVersion": "tekton.dev/v1beta1",
            "kind": "PipelineRun",
            "status": {"conditions": [{"type": "Succeeded", "status": status, "reason": reason}]}
        })
    }

    /// The example document of gjson's SYNTAX.md.
    fn syntax_example() -> Value {
        json!({
            "name": {"first": "Tom", "last": "Anderson"},
            "age": 37,
            "children": ["Sara", "Alex", "Jack"],
            "fav.movie": "Deer Hunter",
            "friends": [
                {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
                {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
                {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
            ]
        })
    }

    // === Katib's defaults on realistic objects ===

    #[test]
    fn job_defaults_follow_the_job_lifecycle() {
        assert_eq!(verdict("batch/v1", "Job", &running_job()), "running");
        assert_eq!(verdict("batch/v1", "Job", &complete_job()), "succeeded");
        assert_eq!(verdict("batch/v1", "Job", &failed_job()), "failed");
        // A Job just created has no status at all.
        let mut fresh = running_job();
        if let Some(members) = fresh.as_object_mut() {
            members.remove("status");
        }
        assert_eq!(verdict("batch/v1", "Job", &fresh), "running");
    }

    #[test]
    fn job_with_complete_false_has_not_succeeded() {
        // Katib's job_util_test.go case: both conditions present with status False.
        let object = job(json!({"conditions": [
            {"type": "Complete", "status": "False"},
            {"type": "Failed", "status": "False"}
        ]}));
        let (success, failure) = defaults("batch/v1", "Job");
        assert!(!success.is_met(&object));
        assert!(!failure.is_met(&object));
        // The query alone finds the condition; the pipe filters it out to `[]`.
        assert_eq!(
            eval(r#"status.conditions.#(type=="Complete")#"#, &object),
            Some(json!([{"type": "Complete", "status": "False"}]))
        );
        assert_eq!(eval(success.as_str(), &object), Some(json!([])));
    }

    #[test]
    fn job_conditions_without_complete_give_an_empty_array_that_is_not_met() {
        let object = job(json!({"conditions": [{"type": "Suspended", "status": "True"}]}));
        let (success, _) = defaults("batch/v1", "Job");
        assert_eq!(eval(success.as_str(), &object), Some(json!([])));
        assert!(!success.is_met(&object));
        assert_eq!(success.first_match(&object), None);
        // A running Job has no conditions: the path does not exist at all.
        assert_eq!(eval(success.as_str(), &running_job()), None);
    }

    #[test]
    fn met_conditions_carry_the_reason_katib_reports() {
        let (success, failure) = defaults("batch/v1", "Job");
        let failed = failure
            .first_match(&failed_job())
            .expect("failed job meets the failure condition");
        assert_eq!(failed["type"], "Failed");
        assert_eq!(failed["reason"], "BackoffLimitExceeded");
        assert_eq!(
            failed["message"],
            "Job has reached the specified backoff limit"
        );
        let succeeded = success
            .first_match(&complete_job())
            .expect("complete job succeeds");
        assert_eq!(succeeded["type"], "Complete");
        assert_eq!(succeeded["reason"], "CompletionsReached");
    }

    #[test]
    fn argo_workflow_phases() {
        let kind = ("argoproj.io/v1alpha1", "Workflow");
        assert_eq!(verdict(kind.0, kind.1, &workflow("Pending")), "running");
        assert_eq!(verdict(kind.0, kind.1, &workflow("Running")), "running");
        assert_eq!(verdict(kind.0, kind.1, &workflow("Succeeded")), "succeeded");
        assert_eq!(verdict(kind.0, kind.1, &workflow("Failed")), "failed");
        // Katib's example conditions do not cover `Error`: such a Workflow stays running.
        assert_eq!(verdict(kind.0, kind.1, &workflow("Error")), "running");
        let (success, _) = defaults(kind.0, kind.1);
        let status = success.first_match(&workflow("Succeeded")).expect("met");
        assert_eq!(status["message"], "workflow is Succeeded");
        let unstarted =
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {}});
        assert_eq!(verdict(kind.0, kind.1, &unstarted), "running");
    }

    #[test]
    fn tfjob_runs_then_succeeds_or_fails() {
        let kind = ("kubeflow.org/v1", "TFJob");
        let running = tfjob(json!([
            {"type": "Created", "status": "True", "reason": "TFJobCreated"},
            {"type": "Running", "status": "True", "reason": "TFJobRunning"}
        ]));
        assert_eq!(verdict(kind.0, kind.1, &running), "running");
        let succeeded = tfjob(json!([
            {"type": "Created", "status": "True", "reason": "TFJobCreated"},
            {"type": "Running", "status": "False", "reason": "TFJobRunning"},
            {"type": "Succeeded", "status": "True", "reason": "TFJobSucceeded",
             "message": "TFJob kubeflow/tfjob-mnist-x successfully completed."}
        ]));
        assert_eq!(verdict(kind.0, kind.1, &succeeded), "succeeded");
        let failed = tfjob(json!([
            {"type": "Created", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "TFJobFailed"}
        ]));
        assert_eq!(verdict(kind.0, kind.1, &failed), "failed");
    }

    #[test]
    fn tekton_pipeline_run_outcomes() {
        let kind = ("tekton.dev/v1", "PipelineRun");
        assert_eq!(
            verdict(kind.0, kind.1, &pipeline_run("Unknown", "Running")),
            "running"
        );
        assert_eq!(
            verdict(kind.0, kind.1, &pipeline_run("True", "Succeeded")),
            "succeeded"
        );
        assert_eq!(
            verdict(kind.0, kind.1, &pipeline_run("False", "Failed")),
            "failed"
        );
    }

    #[test]
    fn default_conditions_by_group_and_kind() {
        let job = default_conditions("batch/v1", "Job");
        assert_eq!(job, Some((JOB_SUCCESS, JOB_FAILURE)));
        assert_eq!(
            default_conditions("trainer.kubeflow.org/v1alpha1", "TrainJob"),
            job
        );
        for kind in [
            "TFJob",
            "PyTorchJob",
            "MPIJob",
            "XGBoostJob",
            "MXJob",
            "PaddleJob",
            "JAXJob",
        ] {
            assert_eq!(
                default_conditions("kubeflow.org/v1", kind),
                Some((TRAINING_JOB_SUCCESS, JOB_FAILURE)),
                "{kind}"
            );
        }
        assert_eq!(
            default_conditions("kubeflow.org/v2beta1", "MPIJob"),
            default_conditions("kubeflow.org/v1", "MPIJob")
        );
        assert_eq!(
            default_conditions("argoproj.io/v1alpha1", "Workflow"),
            Some((ARGO_SUCCESS, ARGO_FAILURE))
        );
        assert_eq!(
            default_conditions("tekton.dev/v1beta1", "PipelineRun"),
            Some((TEKTON_SUCCESS, TEKTON_FAILURE))
        );
        assert_eq!(default_conditions("example.com/v1", "Job"), None);
        assert_eq!(default_conditions("v1", "Pod"), None);
        assert_eq!(default_conditions("batch/v1", "CronJob"), None);
        assert_eq!(default_conditions("Job", "Job"), None);
    }

    #[test]
    fn katib_strings_are_kept_verbatim() {
        assert_eq!(
            JOB_SUCCESS,
            "status.conditions.#(type==\"Complete\")#|#(status==\"True\")#"
        );
        assert_eq!(
            JOB_FAILURE,
            "status.conditions.#(type==\"Failed\")#|#(status==\"True\")#"
        );
        assert_eq!(
            TRAINING_JOB_SUCCESS,
            "status.conditions.#(type==\"Succeeded\")#|#(status==\"True\")#"
        );
        assert_eq!(ARGO_SUCCESS, "status.[@this].#(phase==\"Succeeded\")#");
        assert_eq!(ARGO_FAILURE, "status.[@this].#(phase==\"Failed\")#");
        assert_eq!(
            TEKTON_FAILURE,
            "status.conditions.#(type==\"Succeeded\")#|#(status==\"False\")#"
        );
        assert_eq!(condition(ARGO_SUCCESS).as_str(), ARGO_SUCCESS);
    }

    // === Katib's rule ===

    #[test]
    fn only_objects_and_non_empty_arrays_are_met() {
        let object = workflow("Succeeded");
        // These exist, yet Katib's rule does not count them.
        assert_eq!(eval("status.phase", &object), Some(json!("Succeeded")));
        assert!(!condition("status.phase").is_met(&object));
        assert!(!condition("status.nodes.#").is_met(&object));
        let object = json!({"a": {"t": true, "n": null, "empty": [], "list": [null], "o": {}}});
        assert!(!condition("a.t").is_met(&object));
        assert!(!condition("a.n").is_met(&object));
        assert!(!condition("a.empty").is_met(&object));
        assert!(!condition("a.missing").is_met(&object));
        assert!(condition("a.list").is_met(&object));
        assert_eq!(condition("a.list").first_match(&object), Some(Value::Null));
        assert!(condition("a.o").is_met(&object));
        assert!(condition("@this").is_met(&object));
    }

    #[test]
    fn first_match_query_returns_the_object_katib_test_case() {
        // From Katib's job_util_test.go: a first-match query on `[status]` yields the status.
        let object = job(json!({"succeeded": 1, "conditions": []}));
        let text = "status.[@this].#(succeeded==1)";
        assert!(condition(text).is_met(&object));
        assert_eq!(
            condition(text).first_match(&object),
            Some(json!({"succeeded": 1, "conditions": []}))
        );
        assert!(!condition(text).is_met(&running_job()));
    }

    #[test]
    fn non_object_inputs_meet_nothing_but_themselves() {
        let (success, failure) = defaults("batch/v1", "Job");
        for input in [
            json!(null),
            json!(5),
            json!("status"),
            json!(true),
            json!([]),
            json!({}),
            json!([{"type": "Complete", "status": "True"}]),
        ] {
            assert!(!success.is_met(&input), "{input}");
            assert!(!failure.is_met(&input), "{input}");
        }
        let conditions = json!([{"type": "Complete", "status": "True"}]);
        assert!(condition(r#"#(type=="Complete")#|#(status=="True")#"#).is_met(&conditions));
        assert!(condition("@this").is_met(&conditions));
        assert!(!condition("@this").is_met(&json!("text")));
        assert_eq!(eval("@this", &json!(null)), Some(Value::Null));
        assert_eq!(eval("a", &json!("text")), None);
    }

    // === path syntax ===

    #[test]
    fn syntax_basic_paths() {
        let object = syntax_example();
        assert_eq!(eval("name.last", &object), Some(json!("Anderson")));
        assert_eq!(eval("age", &object), Some(json!(37)));
        assert_eq!(
            eval("children", &object),
            Some(json!(["Sara", "Alex", "Jack"]))
        );
        assert_eq!(eval("children.1", &object), Some(json!("Alex")));
        assert_eq!(eval("children.3", &object), None);
        assert_eq!(eval("friends.1.first", &object), Some(json!("Roger")));
        assert_eq!(eval(r"fav\.movie", &object), Some(json!("Deer Hunter")));
        assert_eq!(eval("fav.movie", &object), None);
        assert_eq!(eval("name.middle", &object), None);
        assert_eq!(eval("name.first.x", &object), None);
        assert_eq!(eval("children.first", &object), None);
    }

    #[test]
    fn index_and_count() {
        let object = complete_job();
        assert_eq!(
            eval("status.conditions.1.type", &object),
            Some(json!("Complete"))
        );
        assert!(condition("status.conditions.0").is_met(&object));
        assert!(!condition("status.conditions.2").is_met(&object));
        assert_eq!(eval("status.conditions.#", &object), Some(json!(2)));
        assert_eq!(eval("status.conditions|#", &object), Some(json!(2)));
        assert_eq!(
            eval("status.conditions.#.type", &object),
            Some(json!(["SuccessCriteriaMet", "Complete"]))
        );
        // On an object, digits and `#` are keys.
        let object = json!({"m": {"0": "zero", "#": "hash"}});
        assert_eq!(eval("m.0", &object), Some(json!("zero")));
        assert_eq!(eval("m.#", &object), Some(json!("hash")));
        assert_eq!(eval("#", &json!([1, 2, 3])), Some(json!(3)));
        assert_eq!(
            eval("#.x", &json!([{"x": 1}, {"y": 2}, {"x": 3}])),
            Some(json!([1, 3]))
        );
    }

    #[test]
    fn escaped_dot_keys() {
        let object = complete_job();
        assert_eq!(
            eval(r"metadata.annotations.example\.com/phase", &object),
            Some(json!("done"))
        );
        let text = r#"metadata.annotations.[@this].#(example\.com/phase=="done")#"#;
        assert!(condition(text).is_met(&object));
        assert_eq!(
            eval(r"a\#b.\0\\c", &json!({"a#b": {"0\\c": 1}})),
            Some(json!(1))
        );
        // On an array gjson does not unescape, so `\0` is no index.
        assert_eq!(eval(r"list.\0", &json!({"list": ["first"]})), None);
        assert_eq!(
            eval("list.0", &json!({"list": ["first"]})),
            Some(json!("first"))
        );
    }

    #[test]
    fn syntax_queries() {
        let object = syntax_example();
        assert_eq!(
            eval(r#"friends.#(last=="Murphy").first"#, &object),
            Some(json!("Dale"))
        );
        assert_eq!(
            eval(r#"friends.#(last=="Murphy")#.first"#, &object),
            Some(json!(["Dale", "Jane"]))
        );
        assert_eq!(
            eval("friends.#(age>45)#.last", &object),
            Some(json!(["Craig", "Murphy"]))
        );
        assert_eq!(
            eval(r#"friends.#(first%"D*").last"#, &object),
            Some(json!("Murphy"))
        );
        assert_eq!(
            eval(r#"friends.#(first!%"D*").last"#, &object),
            Some(json!("Craig"))
        );
        assert_eq!(eval(r#"children.#(!%"*a*")"#, &object), Some(json!("Alex")));
        assert_eq!(
            eval(r#"children.#(%"*a*")#"#, &object),
            Some(json!(["Sara", "Jack"]))
        );
        assert_eq!(
            eval(r#"friends.#(nets.#(=="fb"))#.first"#, &object),
            Some(json!(["Dale", "Roger"]))
        );
        assert_eq!(
            eval(r#"friends.#[last="Murphy"]#.first"#, &object),
            Some(json!(["Dale", "Jane"]))
        );
        assert_eq!(
            eval(r#"friends.#( last == "Craig" ).age"#, &object),
            Some(json!(68))
        );
        assert_eq!(eval(r#"friends.#(last=="Nobody")"#, &object), None);
        assert_eq!(
            eval(r#"friends.#(last=="Nobody")#"#, &object),
            Some(json!([]))
        );
    }

    #[test]
    fn syntax_dot_versus_pipe() {
        let object = syntax_example();
        let murphys = json!([
            {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
            {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
        ]);
        assert_eq!(eval("friends.0.first", &object), Some(json!("Dale")));
        assert_eq!(eval("friends|0.first", &object), Some(json!("Dale")));
        assert_eq!(eval("friends.0|first", &object), Some(json!("Dale")));
        assert_eq!(eval("friends|0|first", &object), Some(json!("Dale")));
        assert_eq!(eval("friends|#", &object), Some(json!(3)));
        assert_eq!(
            eval(r#"friends.#(last="Murphy")#"#, &object),
            Some(murphys.clone())
        );
        assert_eq!(
            eval(r#"friends.#(last="Murphy")#.first"#, &object),
            Some(json!(["Dale", "Jane"]))
        );
        assert_eq!(eval(r#"friends.#(last="Murphy")#|first"#, &object), None);
        assert_eq!(
            eval(r#"friends.#(last="Murphy")#.0"#, &object),
            Some(json!([]))
        );
        assert_eq!(
            eval(r#"friends.#(last="Murphy")#|0"#, &object),
            Some(murphys[0].clone())
        );
        assert_eq!(
            eval(r#"friends.#(last="Murphy")#.#"#, &object),
            Some(json!([]))
        );
        assert_eq!(
            eval(r#"friends.#(last="Murphy")#|#"#, &object),
            Some(json!(2))
        );
    }

    #[test]
    fn pipe_chains() {
        let object = complete_job();
        let complete = r#"status.conditions.#(type=="Complete")#"#;
        assert!(condition(&format!("{complete}|0")).is_met(&object));
        assert_eq!(
            eval(&format!("{complete}|0|reason"), &object),
            Some(json!("CompletionsReached"))
        );
        assert_eq!(eval(&format!("{complete}|#"), &object), Some(json!(1)));
        assert_eq!(
            eval(&format!("{complete}.type|0"), &object),
            Some(json!("Complete"))
        );
        assert_eq!(
            eval(r#"status.conditions.#.type|#(=="Complete")"#, &object),
            Some(json!("Complete"))
        );
        assert_eq!(
            eval(
                r#"status.conditions.#(type=="Complete").status|@this"#,
                &object
            ),
            Some(json!("True"))
        );
        // A map's pipe runs after the map; with no match gjson never runs it.
        let object = syntax_example();
        assert_eq!(
            eval(r#"friends.#(last=="Murphy")#.first|#"#, &object),
            Some(json!(2))
        );
        assert_eq!(
            eval(r#"friends.#(last=="Nobody")#.first|#"#, &object),
            Some(json!([]))
        );
        assert_eq!(eval("friends.#.first|1", &object), Some(json!("Roger")));
    }

    #[test]
    fn this_and_multipaths() {
        let object = json!({"info": {"friends": [
            {"first": "Dale", "extra": [10, 20, 30]},
            {"first": "Roger", "extra": [40, 50, 60]}
        ]}});
        // gjson_test.go TestSubSelectors.
        assert_eq!(
            eval("info.friends.[0.first,1.extra.0]", &object),
            Some(json!(["Dale", 40]))
        );
        assert_eq!(
            eval("info.friends.#.[first,extra.0]", &object),
            Some(json!([["Dale", 10], ["Roger", 40]]))
        );
        assert_eq!(
            eval("info.[@this]", &object),
            Some(json!([object["info"].clone()]))
        );
        assert_eq!(
            eval("info|[@this]|0", &object),
            Some(object["info"].clone())
        );
        assert_eq!(eval("@this.info.friends.#", &object), Some(json!(2)));
        assert_eq!(
            eval("[info.missing,info.friends.#]", &object),
            Some(json!([2]))
        );
        // A missing value piped into a multipath gives an empty array, which is not met.
        assert_eq!(eval("missing.[@this]", &object), Some(json!([])));
        assert!(!condition(r#"missing.[@this].#(phase=="Succeeded")#"#).is_met(&object));
        assert_eq!(eval("missing.deeper.[@this]", &object), None);
    }

    #[test]
    fn queries_on_objects_find_nothing() {
        // The reason Katib's Argo example wraps `status` in `[@this]`.
        let object = workflow("Succeeded");
        assert!(!condition(r#"status.#(phase=="Succeeded")#"#).is_met(&object));
        assert!(condition(r#"status.[@this].#(phase=="Succeeded")#"#).is_met(&object));
    }

    #[test]
    fn gjson_text_quirks_are_reproduced() {
        // Each expectation was checked against gjson v1.14.1.
        let object = json!({
            "friends": [{"first": "Dale", "nets": ["ig", "fb", "tw"]}, {"first": "Roger", "nets": ["fb", "tw"]}],
            "status": {"phase": "Running"},
            "m": {"#": [{"a": 1}, {"a": 2}]}
        });
        // `splitPossiblePipe` skips the character after `.#`, so this `|` runs on each element.
        assert_eq!(eval("friends.#.nets.#|0", &object), Some(json!([])));
        assert_eq!(
            eval("friends.#.nets.#|[@this]", &object),
            Some(json!([[3], [2]]))
        );
        assert_eq!(eval("friends.#.nets|#", &object), Some(json!(2)));
        // A query on an object is a missing key: a following pipe still runs, on nothing.
        assert_eq!(
            eval(r#"status.#(phase=="Running")|[@this]"#, &object),
            Some(json!([]))
        );
        assert_eq!(
            eval(r#"status.#(phase=="Running").[@this]"#, &object),
            Some(json!([]))
        );
        // ... unless its text holds a `.`, where gjson cuts the key and stops.
        assert_eq!(eval("status.#(x.y==1)|[@this]", &object), None);
        // On an object `#` is a key.
        assert_eq!(eval("m.#|0", &object), Some(json!({"a": 1})));
        assert_eq!(eval("m.#.a", &object), None);
        // A first match that fails stops a `.` but not a `|`.
        assert_eq!(
            eval(r#"friends.#(first=="Nobody").nets|[@this]"#, &object),
            None
        );
        assert_eq!(
            eval(r#"friends.#(first=="Nobody")|[@this]"#, &object),
            Some(json!([]))
        );
        assert_eq!(
            eval(r#"friends.#(first=="Dale").nets|1"#, &object),
            Some(json!("fb"))
        );
    }

    #[test]
    fn nested_key_queries() {
        let object = json!({"items": [
            {"metadata": {"name": "a", "labels": {"app": "trainer"}}, "status": {"phase": "Running"}},
            {"metadata": {"name": "b", "labels": {"app": "suggestion"}}, "status": {"phase": "Succeeded"}},
            {"metadata": {"name": "c"}}
        ]});
        assert_eq!(
            eval(
                r#"items.#(metadata.labels.app=="suggestion").metadata.name"#,
                &object
            ),
            Some(json!("b"))
        );
        assert_eq!(
            eval(
                r#"items.#(status.phase!="Running")#.metadata.name"#,
                &object
            ),
            Some(json!(["b"]))
        );
        assert_eq!(eval("items.#(metadata.labels)#|#", &object), Some(json!(2)));
        assert_eq!(
            eval("items.#(metadata.labels.app)#.metadata.name", &object),
            Some(json!(["a", "b"]))
        );
        assert_eq!(
            eval(r#"items.#(metadata.name%"?")#|#"#, &object),
            Some(json!(3))
        );
    }

    #[test]
    fn every_operator_on_numbers() {
        let object = json!({"values": [1, 2, 3, 2.5, "2", null, {"n": 2}]});
        let count = |query: &str| eval(&format!("values.#({query})#|#"), &object);
        assert_eq!(count("==2"), Some(json!(2)));
        assert_eq!(count("=2"), Some(json!(2)));
        // The string "2" equals the text 2, so it is not `!=2`.
        assert_eq!(count("!=2"), Some(json!(3)));
        assert_eq!(count("<2"), Some(json!(1)));
        assert_eq!(count("<=2"), Some(json!(3)));
        assert_eq!(count(">2"), Some(json!(2)));
        assert_eq!(count(">=2.5"), Some(json!(2)));
        assert_eq!(count("==-1e3"), Some(json!(0)));
        // `%` never matches numbers, even negated.
        assert_eq!(count("%\"2\""), Some(json!(1)));
        assert_eq!(count("!%\"9\""), Some(json!(1)));
    }

    #[test]
    fn every_operator_on_strings() {
        let object = json!({"phases": ["Failed", "Pending", "Running", "Succeeded", "Error"]});
        let count = |query: &str| eval(&format!("phases.#({query})#|#"), &object);
        assert_eq!(count(r#"=="Running""#), Some(json!(1)));
        assert_eq!(count(r#"!="Running""#), Some(json!(4)));
        assert_eq!(count(r#"<"Pending""#), Some(json!(2)));
        assert_eq!(count(r#"<="Pending""#), Some(json!(3)));
        assert_eq!(count(r#">"Pending""#), Some(json!(2)));
        assert_eq!(count(r#">="Pending""#), Some(json!(3)));
        assert_eq!(count(r#"%"*ed""#), Some(json!(2)));
        assert_eq!(count(r#"!%"*ed""#), Some(json!(3)));
        assert_eq!(count(r#"%"?unning""#), Some(json!(1)));
    }

    #[test]
    fn values_compare_as_text_by_the_elements_type() {
        let object = json!({"conditions": [
            {"type": "Ready", "status": "True", "ready": true, "count": 5},
            {"type": "Done", "status": "False", "ready": false, "count": 0}
        ]});
        let first_type = |query: &str| eval(&format!("conditions.#({query}).type"), &object);
        // Bare words compare as text with strings, as in gjson.
        assert_eq!(first_type("status==True"), Some(json!("Ready")));
        assert_eq!(first_type("ready==true"), Some(json!("Ready")));
        assert_eq!(first_type(r#"ready=="false""#), Some(json!("Done")));
        assert_eq!(first_type(r#"count=="5""#), Some(json!("Ready")));
        assert_eq!(first_type("count==0"), Some(json!("Done")));
        // Unreadable text reads as the number 0.
        assert_eq!(first_type(r#"count=="zero""#), Some(json!("Done")));
        // gjson's boolean table: true > false, and everything is >= to true.
        assert_eq!(first_type("ready>false"), Some(json!("Ready")));
        assert_eq!(first_type("ready<true"), Some(json!("Done")));
        assert_eq!(first_type("ready!=true"), Some(json!("Done")));
        assert_eq!(first_type("ready>=anything"), Some(json!("Ready")));
        assert_eq!(first_type("ready<=anything"), Some(json!("Done")));
        let nulls = json!({"a": [{"v": null}, {"v": {"x": 1}}, {"v": [1]}]});
        assert_eq!(eval(r#"a.#(v=="null")#|#"#, &nulls), Some(json!(0)));
        assert_eq!(eval(r#"a.#(v!="x")#|#"#, &nulls), Some(json!(0)));
        assert_eq!(eval("a.#(v)#|#", &nulls), Some(json!(3)));
    }

    #[test]
    fn quoted_values_unescape_like_json() {
        let object = json!({"friends": [{"last": "Mur\nphy", "age": 44}, {"last": "Mü\"ller", "age": 47},
                                         {"last": "😀", "age": 50}]});
        assert_eq!(
            eval(r#"friends.#(last=="Mur\nphy").age"#, &object),
            Some(json!(44))
        );
        assert_eq!(
            eval(r#"friends.#(last=="M\u00fc\"ller").age"#, &object),
            Some(json!(47))
        );
        assert_eq!(
            eval(r#"friends.#(last=="\ud83d\ude00").age"#, &object),
            Some(json!(50))
        );
        assert_eq!(eval(r#"friends.#(last%"?").age"#, &object), Some(json!(50)));
    }

    #[test]
    fn like_patterns() {
        let pattern = |text: &str| like_pattern(text).unwrap_or_else(|| panic!("{text}"));
        assert!(like("anything", &pattern("*")));
        assert!(like("", &pattern("*")));
        assert!(!like("", &pattern("?")));
        assert!(like("OOMKilled", &pattern("OOM*")));
        assert!(like("a*b", &pattern(r"a\*b")));
        assert!(!like("axb", &pattern(r"a\*b")));
        assert!(like("ébc", &pattern("?bc")));
        assert!(like("mississippi", &pattern("m*iss*ppi")));
        assert!(!like("mississippi", &pattern("m*iss*ppx")));
        assert!(!like(&"a".repeat(10_000), &pattern("*a*a*a*a*a*a*b")));
        assert_eq!(like_pattern(r"trailing\"), None);
    }

    // === parse errors ===

    #[test]
    fn parse_errors_name_the_fault_and_its_offset() {
        let cases: &[(&str, ConditionError)] = &[
            ("", ConditionError::EmptyPath { offset: 0 }),
            ("status.phase|", ConditionError::EmptyPath { offset: 13 }),
            ("|status", ConditionError::EmptyPath { offset: 0 }),
            ("status..phase", ConditionError::EmptyPath { offset: 7 }),
            ("status.", ConditionError::EmptyPath { offset: 7 }),
            ("[a,]", ConditionError::EmptyPath { offset: 3 }),
            (
                r#"status.conditions.#(type=="Complete""#,
                ConditionError::Unclosed {
                    open: '(',
                    offset: 19,
                },
            ),
            (
                r#"status.conditions.#(type=="Complete)#"#,
                ConditionError::Unclosed {
                    open: '"',
                    offset: 26,
                },
            ),
            (
                "[a,b",
                ConditionError::Unclosed {
                    open: '[',
                    offset: 0,
                },
            ),
            (
                "[a,b.#(c==1]",
                ConditionError::Unexpected {
                    found: ']',
                    offset: 11,
                    expected: "the bracket closing the one opened before it",
                },
            ),
            (
                "#x",
                ConditionError::Unexpected {
                    found: 'x',
                    offset: 1,
                    expected: "`.`, `|`, `(` or the end after `#`",
                },
            ),
            (
                "a.#(b==1)c",
                ConditionError::Unexpected {
                    found: 'c',
                    offset: 9,
                    expected: "`.`, `|` or the end after a query",
                },
            ),
            (
                "[a]b",
                ConditionError::Unexpected {
                    found: 'b',
                    offset: 3,
                    expected: "`.`, `|` or the end after `]`",
                },
            ),
            (r"status\", ConditionError::DanglingEscape { offset: 6 }),
            (
                r#"a.#(b%"x\\")"#,
                ConditionError::DanglingEscape { offset: 6 },
            ),
            (
                "a.#(b!x)",
                ConditionError::InvalidQuery {
                    reason: "unknown operator",
                    offset: 5,
                },
            ),
            (
                "a.#(b==)",
                ConditionError::InvalidQuery {
                    reason: "missing value after the operator",
                    offset: 7,
                },
            ),
            (
                "a.#(b=>1)",
                ConditionError::InvalidQuery {
                    reason: "a query value is a double-quoted string, a number, true or false",
                    offset: 6,
                },
            ),
            (
                r#"a.#(b=="x"y)"#,
                ConditionError::InvalidQuery {
                    reason: "text after the quoted value",
                    offset: 10,
                },
            ),
            (
                "a.#(b==x y)",
                ConditionError::InvalidQuery {
                    reason: "a query value is a double-quoted string, a number, true or false",
                    offset: 7,
                },
            ),
            (
                r#"a.#(b=="\x")"#,
                ConditionError::InvalidQuery {
                    reason: "invalid escape in a string",
                    offset: 8,
                },
            ),
            (
                r#"a.#(b=="\ud83d")"#,
                ConditionError::InvalidQuery {
                    reason: "invalid `\\u` escape",
                    offset: 8,
                },
            ),
            (
                "a.#()",
                ConditionError::InvalidQuery {
                    reason: "empty query",
                    offset: 2,
                },
            ),
        ];
        for (text, expected) in cases {
            let error = parse_error(text);
            assert_eq!(&error, expected, "{text}");
            assert!(
                error
                    .to_string()
                    .contains(&format!("byte {}", expected.offset())),
                "{error}"
            );
        }
    }

    #[test]
    fn unsupported_syntax_is_refused_by_name() {
        let cases: &[(&str, usize, &str)] = &[
            ("status.@reverse", 7, "@reverse"),
            ("@", 0, "without a modifier name"),
            ("status.@this:{}", 12, "modifier arguments"),
            ("status.cond*", 11, "wildcard `*`"),
            ("c?nditions", 1, "wildcard `?`"),
            ("{status,kind}", 0, "object multipath"),
            ("!true", 0, "JSON literal"),
            ("..status", 0, "JSON Lines"),
            ("[name:status]", 5, "multipath names"),
            ("a.#(b|c==1)", 5, "`|` inside a query"),
            (r#"a.#(b=="x|y")"#, 9, "`|` inside a query"),
            ("a.#(b.[c]==1)", 5, "`.[`"),
            ("a.#(b.@this==1)", 5, "`.@`"),
            (r"a\.b.[@this]", 4, "after a key with `\\` escapes"),
            (r"a\|b", 2, "escaped `|`"),
            ("a.#(b==~true)", 7, "`~`"),
            (r#"a.#(b=="~true")"#, 7, "`~`"),
            ("a.#(b==null)", 7, "`null`"),
            ("a.#(b==0x1p4)", 7, "hexadecimal"),
            ("status. phase", 7, "whitespace"),
            ("status.phase\n", 12, "whitespace"),
        ];
        for (text, offset, feature_part) in cases {
            match parse_error(text) {
                ConditionError::Unsupported {
                    feature,
                    offset: at,
                } => {
                    assert_eq!(at, *offset, "{text}");
                    assert!(feature.contains(feature_part), "{text}: {feature}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // Without a `p` exponent Go reads hex as an error (0), as Rust does, so it is accepted.
        assert!(Condition::parse("a.#(b==0x10)").is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}a{}", "[".repeat(100), "]".repeat(100));
        assert!(matches!(
            parse_error(&deep),
            ConditionError::Unsupported { .. }
        ));
        let long = vec!["a"; 100].join(".");
        assert!(matches!(
            parse_error(&long),
            ConditionError::Unsupported { .. }
        ));
        assert!(Condition::parse(&vec!["a"; 40].join(".")).is_ok());
    }

    // === robustness ===

    /// xorshift64*: enough randomness for shape coverage, with no dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound
        }

        fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
            choices[self.below(choices.len())]
        }
    }

    const WORDS: &[&str] = &[
        "status",
        "conditions",
        "type",
        "phase",
        "Complete",
        "Failed",
        "Succeeded",
        "True",
        "False",
        "#",
        "",
        "0",
        "a.b",
        "é",
        "*",
        "null",
        "reason",
    ];

    fn random_value(rng: &mut Rng, depth: usize) -> Value {
        match rng.below(if depth == 0 { 5 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => json!(rng.below(7) as i64 - 3),
            3 => json!(rng.below(100) as f64 / 8.0),
            4 => json!(rng.pick(WORDS)),
            5 => Value::Array(
                (0..rng.below(4))
                    .map(|_| random_value(rng, depth - 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.below(5))
                    .map(|_| (rng.pick(WORDS).to_owned(), random_value(rng, depth - 1)))
                    .collect(),
            ),
        }
    }

    fn assert_consistent(parsed: &Condition, value: &Value) {
        let met = parsed.is_met(value);
        assert_eq!(
            parsed.first_match(value).is_some(),
            met,
            "{} on {value}",
            parsed.as_str()
        );
    }

    #[test]
    fn evaluation_never_panics_on_arbitrary_json() {
        let mut texts: Vec<&str> = vec![
            JOB_SUCCESS,
            JOB_FAILURE,
            TRAINING_JOB_SUCCESS,
            ARGO_SUCCESS,
            ARGO_FAILURE,
            TEKTON_SUCCESS,
            TEKTON_FAILURE,
            "status",
            "@this",
            "#",
            "#.#",
            "0.0",
            "status.conditions.#.type|0",
            r#"#(status)#.#(=="True")#|#"#,
            r#"[@this,#,0].#(%"*")#"#,
            r"\#.\0",
            "status.[@this]|[@this]",
            r#"#(type>="C")#.reason|@this"#,
            r#"#(#(==1))"#,
            r#"#(phase!%"S?cc*")"#,
        ];
        texts.sort_unstable();
        let conditions: Vec<Condition> = texts.iter().map(|text| condition(text)).collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3_000 {
            let value = random_value(&mut rng, 4);
            for parsed in &conditions {
                assert_consistent(parsed, &value);
            }
        }
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_text() {
        // Path-syntax fragments, multibyte characters and escapes, joined at random.
        let fragments = r#"a b 0 . | # ( ) [ ] { } @ @this " \ == ! = < > % * ? , : ~ é 😀 #( )# true \u00e9 \ud83d status"#;
        let pieces: Vec<&str> = fragments.split(' ').chain([" "]).collect();
        let mut rng = Rng(42);
        let sample = json!({"a": [{"b": 0, "0": "é"}, [true, null]], "status": {"conditions": [{"a": "b"}]}});
        let mut parsed_count = 0;
        for _ in 0..20_000 {
            let text: String = (0..rng.below(14)).map(|_| rng.pick(&pieces)).collect();
            match Condition::parse(&text) {
                Ok(parsed) => {
                    parsed_count += 1;
                    assert_eq!(parsed.as_str(), text);
                    assert_consistent(&parsed, &sample);
                    assert_consistent(&parsed, &random_value(&mut rng, 3));
                }
                Err(error) => assert!(error.offset() <= text.len(), "{text:?}: {error}"),
            }
        }
        assert!(
            parsed_count > 500,
            "only {parsed_count} random paths parsed"
        );
    }
}
