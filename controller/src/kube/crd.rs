//! The CustomResourceDefinitions of Sextant's Experiment and Trial kinds, generated from the
//! API types: real OpenAPI v3 schemas (Katib's are schemaless), the status subresource and
//! printer columns. `sextant crd` prints them; `deploy/crds/` holds the committed copies.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

use crate::api::experiment::ExperimentResource;
use crate::api::trial::TrialResource;

/// Why the definitions could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// YAML rendering failed.
    #[error("cannot render {name} as YAML: {source}")]
    Yaml {
        /// The definition's name.
        name: String,
        /// Why.
        source: serde_yaml::Error,
    },
}

/// The definitions, Experiment first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![ExperimentResource::crd(), TrialResource::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|validation| validation.open_api_v3_schema.as_mut())
            {
                strip_defaults(schema);
            }
        }
    }
    crds
}

/// Removes the `default` of every schema in the tree. serde's defaults are the controller's
/// business (Katib's defaulting runs in [`crate::defaults`]); as schema defaults the API server
/// would apply them itself, and Kubernetes 1.20 even refuses the empty-string ones.
fn strip_defaults(schema: &mut JSONSchemaProps) {
    schema.default = None;
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|properties| properties.values_mut())
        .chain(schema.all_of.iter_mut().flatten())
        .chain(schema.any_of.iter_mut().flatten())
        .chain(schema.one_of.iter_mut().flatten());
    for child in children {
        strip_defaults(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        strip_defaults(items);
    }
    if let Some(JSONSchemaPropsOrArray::Schemas(items)) = schema.items.as_mut() {
        items.iter_mut().for_each(strip_defaults);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(additional)) = schema.additional_properties.as_mut() {
        strip_defaults(additional);
    }
}

/// Each definition as a YAML document, with its name (`experiments.sextant.dev`, ...).
pub fn crd_documents() -> Result<Vec<(String, String)>, CrdError> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            serde_yaml::to_string(&crd)
                .map(|yaml| (name.clone(), yaml))
                .map_err(|source| CrdError::Yaml { name, source })
        })
        .collect()
}
