//! Katib's `v1beta1` API types, field for field: the Experiment, Trial and Suggestion kinds, the
//! types they share, and Sextant's own trial template kinds (`Process`, `Pipeline`).
//!
//! Field names are Katib's JSON names (serde `camelCase`); optional fields are `Option` where
//! Katib has a pointer, so that defaulting can tell "absent" from "zero". String-valued enums
//! keep values outside Katib's set as `Other(text)` instead of failing to parse, so that
//! validation can report every bad value at once with its field path. The types derive
//! `Clone, Debug, Serialize, Deserialize, PartialEq` (and `Default` where an empty value makes
//! sense) and `JsonSchema`, from which the Kubernetes driver of `sextant-controller` generates
//! its custom resource definitions.

pub mod common;
pub mod experiment;
pub mod suggestion;
pub mod template;
pub mod trial;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Katib's API group and version; Sextant reads and writes it unchanged.
pub const KATIB_API_VERSION: &str = "kubeflow.org/v1beta1";

/// Sextant's own API group and version: the same schema as Katib's, and the group of Sextant's
/// own trial template kinds.
pub const SEXTANT_API_VERSION: &str = "sextant.dev/v1beta1";

/// The schema of an embedded Kubernetes object or other free-form JSON (a trial template's
/// `trialSpec`, a custom collector): any object, kept whole by the API server.
pub(crate) fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Whether `api_version` is one under which Sextant accepts Katib's kinds.
pub fn is_supported_api_version(api_version: &str) -> bool {
    api_version == KATIB_API_VERSION || api_version == SEXTANT_API_VERSION
}

/// Defines a string-valued enum that keeps unknown values as `Other(text)`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
            /// A value outside Katib's set, kept as written so that validation can name it.
            Other(String),
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $( $text => $name::$variant, )+
                    _ => $name::Other(text),
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name::from(text.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl $name {
            /// Every value Katib defines, spelled as in its API.
            pub const KNOWN: &'static [&'static str] = &[$( $text ),+];

            /// The value as spelled in the API.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(text) => text,
                }
            }
        }

        // A plain string in the CRD schema: values outside Katib's set must reach validation,
        // which names the field, instead of being refused by the API server without context.
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": format!("One of: {}.", $name::KNOWN.join(", ")),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

/// The part of Kubernetes' `ObjectMeta` that Sextant uses; other metadata fields are ignored
/// when read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object's name, unique per kind and namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The namespace; locally only a label, in a cluster the Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels, copied onto trials as Katib does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations; Sextant's own switches live here so the spec stays Katib's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The identity the store or the API server gave the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The API server's version of the object, for optimistic concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// The spec's generation, raised on each spec change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// When the object was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<DateTime<Utc>>,
}

/// Whether a condition holds, as Kubernetes spells it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known.
    #[default]
    Unknown,
}

/// One condition of an Experiment, Trial or Suggestion, with the kind's condition type `T`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition<T> {
    /// What the condition is about.
    #[serde(rename = "type")]
    pub condition_type: T,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A machine-readable reason (`ExperimentRunning`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the condition was last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<DateTime<Utc>>,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
}

/// The newest condition that holds: conditions are kept in the order they first held, and
/// the last one that is `True` is the object's state (Katib's reading).
pub fn latest_true_condition<T>(conditions: &[Condition<T>]) -> Option<&Condition<T>> {
    conditions
        .iter()
        .rev()
        .find(|condition| condition.status == ConditionStatus::True)
}

/// Sets a condition with Katib's `setCondition` semantics: nothing changes when the status and
/// reason are already the same; the transition time is kept when only the reason or message
/// changes; the updated condition moves to the end of the list, so the last condition is the
/// most recently changed one (what `kubectl get` prints). Returns whether anything changed.
pub fn set_condition<T: PartialEq + Clone>(
    conditions: &mut Vec<Condition<T>>,
    condition_type: T,
    status: ConditionStatus,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> bool {
    let existing = conditions
        .iter()
        .position(|condition| condition.condition_type == condition_type);
    let mut last_transition_time = Some(now);
    if let Some(index) = existing {
        let old = &conditions[index];
        if old.status == status && old.reason == reason {
            return false;
        }
        if old.status == status {
            last_transition_time = old.last_transition_time;
        }
        conditions.remove(index);
    }
    conditions.push(Condition {
        condition_type,
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_update_time: Some(now),
        last_transition_time,
    });
    true
}

/// Whether the condition of type `condition_type` is present with status `True`.
pub fn has_true_condition<T: PartialEq>(conditions: &[Condition<T>], condition_type: &T) -> bool {
    conditions.iter().any(|condition| {
        &condition.condition_type == condition_type && condition.status == ConditionStatus::True
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::experiment::ExperimentConditionType;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("a valid timestamp")
    }

    #[test]
    fn set_condition_keeps_transition_time_when_status_is_unchanged() {
        let mut conditions = Vec::new();
        let created = ExperimentConditionType::Created;
        assert!(set_condition(
            &mut conditions,
            created.clone(),
            ConditionStatus::True,
            "A",
            "a",
            at(1)
        ));
        assert!(!set_condition(
            &mut conditions,
            created.clone(),
            ConditionStatus::True,
            "A",
            "other",
            at(2)
        ));
        assert!(set_condition(
            &mut conditions,
            created.clone(),
            ConditionStatus::True,
            "B",
            "b",
            at(3)
        ));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Some(at(1)));
        assert_eq!(conditions[0].last_update_time, Some(at(3)));
        assert!(set_condition(
            &mut conditions,
            created,
            ConditionStatus::False,
            "B",
            "b",
            at(4)
        ));
        assert_eq!(conditions[0].last_transition_time, Some(at(4)));
    }

    #[test]
    fn set_condition_moves_the_changed_condition_last() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ExperimentConditionType::Created,
            ConditionStatus::True,
            "A",
            "",
            at(1),
        );
        set_condition(
            &mut conditions,
            ExperimentConditionType::Running,
            ConditionStatus::True,
            "B",
            "",
            at(1),
        );
        set_condition(
            &mut conditions,
            ExperimentConditionType::Created,
            ConditionStatus::False,
            "A",
            "",
            at(2),
        );
        let types: Vec<_> = conditions
            .iter()
            .map(|c| c.condition_type.clone())
            .collect();
        assert_eq!(
            types,
            [
                ExperimentConditionType::Running,
                ExperimentConditionType::Created
            ]
        );
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let policy: experiment::ResumePolicy =
            serde_json::from_str("\"Sometimes\"").expect("parses");
        assert_eq!(policy, experiment::ResumePolicy::Other("Sometimes".into()));
        assert_eq!(
            serde_json::to_string(&experiment::ResumePolicy::LongRunning).expect("serializes"),
            "\"LongRunning\""
        );
    }
}
