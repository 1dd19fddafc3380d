//! Trial template placeholders: finding `${trialParameters.<name>}` in a template, reading
//! `${trialSpec.<Key>}` metadata references, and substituting values.
//!
//! Katib substitutes by plain string replacement on the serialized template. Sextant walks the
//! template instead and replaces inside string values only, so a value lands in exactly the
//! argv item or field that names it and can never change the template's structure.
//!
//! A conditional parameter that is inactive in a trial has no value. Its trial parameter's
//! `default` stands in when given; otherwise every array item (argv item) holding its
//! placeholder is dropped from the array ([`drop_items_naming`]), so `--momentum=${...}`
//! disappears from the command of a trial without momentum. Validation allows such a
//! placeholder nowhere else.

use std::collections::{BTreeMap, BTreeSet};

/// The opening of a trial parameter placeholder.
const PLACEHOLDER_OPENING: &str = "${trialParameters.";

/// A placeholder found in a template: the JSON-style path of the string holding it, and the
/// trial parameter it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceholderUse {
    /// Where it is, relative to the template root (`spec.template.spec.containers[0].command[4]`).
    pub path: String,
    /// The trial parameter's name.
    pub name: String,
}

/// The names of the `${trialParameters.<name>}` placeholders in `text`, in order (Katib's
/// non-greedy `\$\{trialParameters\..+?\}`).
pub fn placeholder_names(text: &str) -> Vec<&str> {
    placeholder_spans(text).map(|(_, name, _)| name).collect()
}

/// Each placeholder as (start, name, end) byte offsets into `text`, `end` past the `}`.
fn placeholder_spans(text: &str) -> impl Iterator<Item = (usize, &str, usize)> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let start = offset + text[offset..].find(PLACEHOLDER_OPENING)?;
        let name_start = start + PLACEHOLDER_OPENING.len();
        // Katib's `.+?` needs at least one character before the closing brace.
        let after_first = name_start + text[name_start..].chars().next()?.len_utf8();
        let name_end = after_first + text[after_first..].find('}')?;
        offset = name_end + 1;
        Some((start, &text[name_start..name_end], offset))
    })
}

/// Every placeholder in a template, with the path of the string (or key) that holds it.
pub fn find_placeholders(template: &serde_json::Value) -> Vec<PlaceholderUse> {
    let mut found = Vec::new();
    walk(template, String::new(), &mut found);
    found
}

fn walk(value: &serde_json::Value, path: String, found: &mut Vec<PlaceholderUse>) {
    match value {
        serde_json::Value::String(text) => {
            for name in placeholder_names(text) {
                found.push(PlaceholderUse {
                    path: path.clone(),
                    name: name.to_owned(),
                });
            }
        }
        serde_json::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{index}]"), found);
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, item) in fields {
                let item_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                for name in placeholder_names(key) {
                    found.push(PlaceholderUse {
                        path: item_path.clone(),
                        name: name.to_owned(),
                    });
                }
                walk(item, item_path, found);
            }
        }
        _ => {}
    }
}

/// A trial parameter reference to trial metadata instead of a search parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataReference {
    /// `${trialSpec.Name}`: the trial's name.
    Name,
    /// `${trialSpec.Namespace}`: the trial's namespace.
    Namespace,
    /// `${trialSpec.Kind}`: the template's kind.
    Kind,
    /// `${trialSpec.APIVersion}`: the template's apiVersion.
    ApiVersion,
    /// `${trialSpec.Labels[key]}`: a label of the template's metadata.
    Label(String),
    /// `${trialSpec.Annotations[key]}`: an annotation of the template's metadata.
    Annotation(String),
}

impl MetadataReference {
    /// Reads a reference: `None` when it is not of the `${trialSpec.<Key>}` form at all (so it
    /// names a search parameter), `Some(Err(key))` when the form is right but the key unknown.
    pub fn parse(reference: &str) -> Option<Result<MetadataReference, String>> {
        let key = reference.strip_prefix("${trialSpec.")?.strip_suffix('}')?;
        let indexed = |prefix: &str| {
            key.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('['))
                .and_then(|rest| rest.strip_suffix(']'))
                .filter(|inner| !inner.is_empty())
                .map(str::to_owned)
        };
        let parsed = match key {
            "Name" => MetadataReference::Name,
            "Namespace" => MetadataReference::Namespace,
            "Kind" => MetadataReference::Kind,
            "APIVersion" => MetadataReference::ApiVersion,
            _ => {
                if let Some(label) = indexed("Labels") {
                    MetadataReference::Label(label)
                } else if let Some(annotation) = indexed("Annotations") {
                    MetadataReference::Annotation(annotation)
                } else {
                    return Some(Err(key.to_owned()));
                }
            }
        };
        Some(Ok(parsed))
    }
}

/// The template without the array items (strings directly in an array, such as argv items)
/// that hold a placeholder of one of `names`: how a trial leaves out the parameters that are
/// inactive in it.
pub fn drop_items_naming(
    template: &serde_json::Value,
    names: &BTreeSet<String>,
) -> serde_json::Value {
    if names.is_empty() {
        return template.clone();
    }
    match template {
        serde_json::Value::Array(items) => serde_json::Value::Array(
            items
                .iter()
                .filter(|item| {
                    item.as_str().is_none_or(|text| {
                        !placeholder_names(text)
                            .iter()
                            .any(|name| names.contains(*name))
                    })
                })
                .map(|item| drop_items_naming(item, names))
                .collect(),
        ),
        serde_json::Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(key, item)| (key.clone(), drop_items_naming(item, names)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether a placeholder found at `path` (see [`PlaceholderUse`]) sits in a string directly
/// inside an array, the one place [`drop_items_naming`] can leave it out.
pub fn is_array_item(path: &str) -> bool {
    path.ends_with(']')
}

/// Replaces every `${trialParameters.<name>}` in the template's strings and keys by its value;
/// placeholders without a value are left as written (validation rejects them beforehand).
pub fn substitute(
    template: &serde_json::Value,
    values: &BTreeMap<String, String>,
) -> serde_json::Value {
    match template {
        serde_json::Value::String(text) => serde_json::Value::String(substitute_text(text, values)),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|item| substitute(item, values)).collect())
        }
        serde_json::Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(key, item)| (substitute_text(key, values), substitute(item, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces the placeholders of one string in a single pass, so a substituted value is never
/// itself read as a placeholder.
pub fn substitute_text(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut result = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, name, end) in placeholder_spans(text) {
        if let Some(value) = values.get(name) {
            result.push_str(&text[copied..start]);
            result.push_str(value);
            copied = end;
        }
    }
    result.push_str(&text[copied..]);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_with_their_paths() {
        let template = serde_json::json!({
            "spec": {"command": ["python", "--lr=${trialParameters.lr} --m=${trialParameters.m}"]},
            "env": [{"name": "X", "value": "${trialParameters.x}"}],
            "plain": "${trialParameters.}",
        });
        let found = find_placeholders(&template);
        let pairs: Vec<_> = found
            .iter()
            .map(|u| (u.path.as_str(), u.name.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("env[0].value", "x"),
                ("spec.command[1]", "lr"),
                ("spec.command[1]", "m")
            ]
        );
    }

    #[test]
    fn argv_items_of_inactive_parameters_are_dropped() {
        let template = serde_json::json!({
            "command": ["train", "--optimizer=${trialParameters.opt}", "--momentum=${trialParameters.m}"],
            "env": [{"name": "M", "value": "${trialParameters.m}"}],
            "nested": [["${trialParameters.m}", "keep"]],
        });
        let dropped = drop_items_naming(&template, &BTreeSet::from(["m".to_owned()]));
        assert_eq!(
            dropped,
            serde_json::json!({
                "command": ["train", "--optimizer=${trialParameters.opt}"],
                "env": [{"name": "M", "value": "${trialParameters.m}"}],
                "nested": [["keep"]],
            })
        );
        assert_eq!(drop_items_naming(&template, &BTreeSet::new()), template);
        let paths: Vec<bool> = find_placeholders(&template)
            .iter()
            .map(|found| is_array_item(&found.path))
            .collect();
        // command[1], command[2], env[0].value, nested[0][0].
        assert_eq!(paths, [true, true, false, true]);
    }

    #[test]
    fn metadata_references_are_read() {
        assert_eq!(MetadataReference::parse("lr"), None);
        assert_eq!(
            MetadataReference::parse("${trialSpec.Name}"),
            Some(Ok(MetadataReference::Name))
        );
        assert_eq!(
            MetadataReference::parse("${trialSpec.Labels[custom-key]}"),
            Some(Ok(MetadataReference::Label("custom-key".into())))
        );
        assert_eq!(
            MetadataReference::parse("${trialSpec.Uid}"),
            Some(Err("Uid".into()))
        );
        assert_eq!(
            MetadataReference::parse("${trialSpec.Labels[]}"),
            Some(Err("Labels[]".into()))
        );
    }

    #[test]
    fn substitution_stays_inside_strings() {
        let template = serde_json::json!({"args": ["--lr=${trialParameters.lr}", "${trialParameters.cmd}"], "n": 3});
        let values = BTreeMap::from([
            ("lr".to_owned(), "0.1".to_owned()),
            ("cmd".to_owned(), "a\"; rm -rf / #".to_owned()),
        ]);
        let substituted = substitute(&template, &values);
        assert_eq!(
            substituted,
            serde_json::json!({"args": ["--lr=0.1", "a\"; rm -rf / #"], "n": 3})
        );
        let sneaky = BTreeMap::from([
            ("a".to_owned(), "${trialParameters.b}".to_owned()),
            ("b".to_owned(), "B".to_owned()),
        ]);
        assert_eq!(
            substitute_text(
                "${trialParameters.a}/${trialParameters.b}/${trialParameters.c}",
                &sneaky
            ),
            "${trialParameters.b}/B/${trialParameters.c}"
        );
        assert_eq!(
            placeholder_names("${trialParameters.}x} ${trialParameters.é}"),
            ["}x", "é"]
        );
    }
}
