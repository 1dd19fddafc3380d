//! Reading Experiments from YAML: multi-document files, of which the `Experiment` documents are
//! taken and every other kind (a ConfigMap shipped alongside, say) is skipped.
//!
//! Documents are split on their `---` lines and each is deserialized from its own text, so a
//! serde error names the field path and the line within the file.

use serde::Deserialize;

use crate::api::experiment::{EXPERIMENT_KIND, Experiment};
use crate::api::{KATIB_API_VERSION, SEXTANT_API_VERSION, is_supported_api_version};

/// Why a file could not be read as Experiments.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A document is not valid YAML or does not fit the Experiment schema.
    #[error("document {document} (starting at line {first_line}): {source}")]
    Yaml {
        /// 1-based position of the document in the file.
        document: usize,
        /// The file line the document starts at, since serde's line numbers count from it.
        first_line: usize,
        /// What serde said, with the field path and the line within the document.
        #[source]
        source: serde_yaml::Error,
    },
    /// An Experiment document has an API version Sextant does not read.
    #[error(
        "document {document}: apiVersion {api_version:?} is not supported for kind Experiment; expected {KATIB_API_VERSION} or {SEXTANT_API_VERSION}"
    )]
    UnsupportedApiVersion {
        /// 1-based position of the document.
        document: usize,
        /// The version given.
        api_version: String,
    },
    /// No document of kind Experiment was found.
    #[error("no document of kind Experiment found")]
    NoExperiment,
}

/// Every Experiment in a (multi-document) YAML text, in file order.
pub fn parse_experiments(text: &str) -> Result<Vec<Experiment>, ParseError> {
    let mut experiments = Vec::new();
    for (index, (first_line, document)) in split_documents(text).into_iter().enumerate() {
        let number = index + 1;
        let yaml_error = |source| ParseError::Yaml {
            document: number,
            first_line,
            source,
        };
        let header = Header::deserialize(serde_yaml::Deserializer::from_str(&document))
            .map_err(yaml_error)?;
        let Some(header) = header else { continue };
        if header.kind.as_deref() != Some(EXPERIMENT_KIND) {
            continue;
        }
        let api_version = header.api_version.unwrap_or_default();
        if !is_supported_api_version(&api_version) {
            return Err(ParseError::UnsupportedApiVersion {
                document: number,
                api_version,
            });
        }
        experiments.push(serde_yaml::from_str(&document).map_err(yaml_error)?);
    }
    if experiments.is_empty() {
        return Err(ParseError::NoExperiment);
    }
    Ok(experiments)
}

/// The one Experiment of a YAML text; with several, the first.
pub fn parse_experiment(text: &str) -> Result<Experiment, ParseError> {
    parse_experiments(text)?
        .into_iter()
        .next()
        .ok_or(ParseError::NoExperiment)
}

/// The fields that say what a document is; `None` for an empty document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeaderFields {
    api_version: Option<String>,
    kind: Option<String>,
}

type Header = Option<HeaderFields>;

/// Splits a YAML stream on its document markers, keeping each document's first line number
/// (1-based) and dropping documents that hold only comments and blank lines.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (index, line) in text.lines().enumerate() {
        let is_marker = line.trim_end() == "---" || line.starts_with("--- ");
        if is_marker {
            documents.push((first_line, std::mem::take(&mut current)));
            first_line = index + 2;
            if let Some(rest) = line.strip_prefix("--- ") {
                current.push_str(rest);
                current.push('\n');
                first_line = index + 1;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    documents.push((first_line, current));
    documents
        .into_iter()
        .filter(|(_, document)| {
            document
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_DOCUMENTS: &str = "\
# leading comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: templates
---
apiVersion: sextant.dev/v1beta1
kind: Experiment
metadata:
  name: first
spec:
  maxTrialCount: 4
---
---
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: second
";

    #[test]
    fn experiments_are_taken_from_multi_document_files() {
        let experiments = parse_experiments(TWO_DOCUMENTS).expect("parses");
        let names: Vec<_> = experiments
            .iter()
            .map(|e| e.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["first", "second"]);
        assert_eq!(experiments[0].spec.max_trial_count, Some(4));
    }

    #[test]
    fn unknown_fields_are_reported_with_their_path_and_line() {
        let text = "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata:\n  name: x\nspec:\n  maxTrialCounts: 3\n";
        let error = parse_experiments(text)
            .expect_err("a typo is an error")
            .to_string();
        assert!(error.contains("maxTrialCounts"), "{error}");
        assert!(error.contains("line 6"), "{error}");
    }

    #[test]
    fn other_api_versions_and_empty_files_are_rejected() {
        let text = "apiVersion: kubeflow.org/v1alpha3\nkind: Experiment\n";
        assert!(matches!(
            parse_experiments(text),
            Err(ParseError::UnsupportedApiVersion { document: 1, .. })
        ));
        assert!(matches!(
            parse_experiments("# nothing\n"),
            Err(ParseError::NoExperiment)
        ));
    }
}
