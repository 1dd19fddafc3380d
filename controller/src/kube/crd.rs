//! The CustomResourceDefinitions of the Experiment and Trial kinds in either API group
//! ([`ApiGroup`]), built from the API types: real OpenAPI v3 schemas (Katib's are schemaless),
//! the status subresource and printer columns. `sextant crd` prints them; `deploy/crds/` holds
//! the committed `sextant.dev` copies and `deploy/katib/crds/` the `kubeflow.org` ones.
//!
//! The resources are `kube::core::Object`s with the group chosen at run time (see
//! [`super::group`]), so the definitions are assembled here rather than by kube's derive: the
//! same schema, generated with the derive's settings, under either group's names.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps, JSONSchemaPropsOrArray,
    JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use schemars::transform::AddNullable;

use crate::kube::ApiGroup;
use crate::kube::pipeline_resources::{
    Pipeline, PipelineRun, PipelineRunSpec, PipelineRunStatus, PipelineSpec, RecurringRun,
    RecurringRunSpec, RecurringRunStatus,
};
use sextant_experiment::api::experiment::{ExperimentSpec, ExperimentStatus};
use sextant_experiment::api::trial::{EXPERIMENT_LABEL, TrialSpec, TrialStatus};

/// Why the definitions could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The generated schema is not one Kubernetes can hold.
    #[error("the schema of {name} is not a Kubernetes JSON schema: {source}")]
    Schema {
        /// The definition's name.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
    /// YAML rendering failed.
    #[error("cannot render {name} as YAML: {source}")]
    Yaml {
        /// The definition's name.
        name: String,
        /// Why.
        source: serde_yaml::Error,
    },
}

/// The definitions in `group`, Experiment first.
pub fn crds(group: ApiGroup) -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let experiment_columns = vec![
        column("Status", "string", ".status.conditions[-1:].type"),
        column("Trials", "integer", ".status.trials"),
        column("Succeeded", "integer", ".status.trialsSucceeded"),
        column(
            "Best trial",
            "string",
            ".status.currentOptimalTrial.bestTrialName",
        ),
        column("Age", "date", ".metadata.creationTimestamp"),
    ];
    let trial_columns = vec![
        column("Status", "string", ".status.conditions[-1:].type"),
        column(
            "Experiment",
            "string",
            &format!(".metadata.labels.{}", EXPERIMENT_LABEL.replace('.', "\\.")),
        ),
        column("Age", "date", ".metadata.creationTimestamp"),
    ];
    let experiments = group.experiments();
    let trials = group.trials();
    Ok(vec![
        definition(
            group,
            &experiments,
            schema::<ExperimentSpec, ExperimentStatus>(
                &experiments,
                "An Experiment: a search space, an objective, an algorithm, a budget and a trial template.",
            )?,
            experiment_columns,
        ),
        definition(
            group,
            &trials,
            schema::<TrialSpec, TrialStatus>(
                &trials,
                "A Trial: one run of its experiment's trial template with one parameter assignment.",
            )?,
            trial_columns,
        ),
    ])
}

/// The definitions of the pipeline kinds (`sextant.dev` only: Katib has no such kinds):
/// Pipeline, PipelineRun, RecurringRun.
pub fn pipeline_crds() -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let pipelines = ApiResource::erase::<Pipeline>(&());
    let runs = ApiResource::erase::<PipelineRun>(&());
    let recurring = ApiResource::erase::<RecurringRun>(&());
    let run_columns = vec![
        column("Phase", "string", ".status.phase"),
        column("Workflow", "string", ".status.workflowName"),
        column("Started", "date", ".status.startedAt"),
        column("Finished", "date", ".status.finishedAt"),
    ];
    let recurring_columns = vec![
        column("Schedule", "string", ".spec.schedule.cron"),
        column("Enabled", "boolean", ".spec.enabled"),
        column("Last", "date", ".status.lastFiringTime"),
        column("Next", "date", ".status.nextFiringTime"),
    ];
    Ok(vec![
        definition(
            ApiGroup::Sextant,
            &pipelines,
            spec_schema::<PipelineSpec>(
                &pipelines,
                "A stored pipeline: parameters and a DAG of steps, run by PipelineRuns that reference it.",
            )?,
            vec![column("Age", "date", ".metadata.creationTimestamp")],
        ),
        definition(
            ApiGroup::Sextant,
            &runs,
            schema::<PipelineRunSpec, PipelineRunStatus>(
                &runs,
                "One run of a pipeline (inline or a reference to a Pipeline) on Argo Workflows.",
            )?,
            run_columns,
        ),
        definition(
            ApiGroup::Sextant,
            &recurring,
            schema::<RecurringRunSpec, RecurringRunStatus>(
                &recurring,
                "PipelineRuns created from a template on a cron schedule.",
            )?,
            recurring_columns,
        ),
    ])
}

/// Each definition in `group` as a YAML document, with its name (`experiments.sextant.dev`,
/// ...); in `sextant.dev`, the pipeline kinds' too.
pub fn crd_documents(group: ApiGroup) -> Result<Vec<(String, String)>, CrdError> {
    let mut definitions = crds(group)?;
    if group == ApiGroup::Sextant {
        definitions.extend(pipeline_crds()?);
    }
    definitions
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            serde_yaml::to_string(&crd)
                .map(|yaml| (name.clone(), yaml))
                .map_err(|source| CrdError::Yaml { name, source })
        })
        .collect()
}

/// The definition's name, `<plural>.<group>`.
fn crd_name(resource: &ApiResource) -> String {
    format!("{}.{}", resource.plural, resource.group)
}

fn column(name: &str, type_: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        json_path: json_path.into(),
        ..Default::default()
    }
}

/// A namespaced definition of `resource` with a status subresource. In Katib's group the names
/// are Katib's own (categories `all`, `kubeflow`, `katib`; no short names), so that `kubectl get
/// katib` and `kubectl get all` list what they list with Katib installed.
fn definition(
    group: ApiGroup,
    resource: &ApiResource,
    schema: JSONSchemaProps,
    columns: Vec<CustomResourceColumnDefinition>,
) -> CustomResourceDefinition {
    let (categories, short_names) = match group {
        ApiGroup::Sextant => (vec!["sextant".to_owned()], short_name(&resource.kind)),
        ApiGroup::Katib => (
            ["all", "kubeflow", "katib"].map(String::from).to_vec(),
            None,
        ),
    };
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(crd_name(resource)),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: resource.group.clone(),
            names: CustomResourceDefinitionNames {
                categories: Some(categories),
                kind: resource.kind.clone(),
                plural: resource.plural.clone(),
                short_names,
                singular: Some(resource.kind.to_ascii_lowercase()),
                ..Default::default()
            },
            scope: "Namespaced".into(),
            versions: vec![CustomResourceDefinitionVersion {
                additional_printer_columns: Some(columns),
                name: resource.version.clone(),
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(schema),
                }),
                served: true,
                storage: true,
                subresources: Some(CustomResourceSubresources {
                    scale: None,
                    status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}

/// The short name of a `sextant.dev` kind, for `kubectl get exp`.
fn short_name(kind: &str) -> Option<Vec<String>> {
    let short = match kind {
        sextant_experiment::api::experiment::EXPERIMENT_KIND => "exp",
        "Pipeline" => "pl",
        "PipelineRun" => "prun",
        "RecurringRun" => "rrun",
        _ => return None,
    };
    Some(vec![short.to_owned()])
}

/// The object schema of a resource with spec `S` and status `T`, generated as kube's derive
/// does (inline, OpenAPI 3, structural, `nullable` for optional fields), without defaults.
fn schema<S: JsonSchema, T: JsonSchema>(
    resource: &ApiResource,
    description: &str,
) -> Result<JSONSchemaProps, CrdError> {
    object_schema::<S>(resource, description, |generator| {
        Some(generator.subschema_for::<Option<T>>())
    })
}

/// The object schema of a resource with spec `S` and no status (a stored document).
fn spec_schema<S: JsonSchema>(
    resource: &ApiResource,
    description: &str,
) -> Result<JSONSchemaProps, CrdError> {
    object_schema::<S>(resource, description, |_| None)
}

/// The object schema of a resource with spec `S` and the status schema `status` makes.
fn object_schema<S: JsonSchema>(
    resource: &ApiResource,
    description: &str,
    status: impl FnOnce(&mut schemars::SchemaGenerator) -> Option<schemars::Schema>,
) -> Result<JSONSchemaProps, CrdError> {
    let mut generator = SchemaSettings::openapi3()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .with_transform(AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    let spec = generator.subschema_for::<S>();
    let mut properties = serde_json::json!({"spec": spec});
    if let Some(status) = status(&mut generator) {
        properties["status"] = status.to_value();
    }
    let mut root = schemars::json_schema!({
        "title": resource.kind,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": ["spec"],
    });
    for transform in generator.transforms_mut() {
        transform.transform(&mut root);
    }
    let mut schema: JSONSchemaProps =
        serde_json::from_value(root.to_value()).map_err(|source| CrdError::Schema {
            name: crd_name(resource),
            source,
        })?;
    strip_defaults(&mut schema);
    Ok(schema)
}

/// Removes the `default` of every schema in the tree. serde's defaults are the controller's
/// business (Katib's defaulting runs in [`sextant_experiment::defaults`]); as schema defaults the API server
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_groups_define_the_same_kinds_with_the_same_schemas() {
        let sextant = crds(ApiGroup::Sextant).expect("sextant.dev definitions");
        let katib = crds(ApiGroup::Katib).expect("kubeflow.org definitions");
        let names = |crds: &[CustomResourceDefinition]| -> Vec<String> {
            crds.iter()
                .filter_map(|crd| crd.metadata.name.clone())
                .collect()
        };
        assert_eq!(
            names(&sextant),
            ["experiments.sextant.dev", "trials.sextant.dev"]
        );
        assert_eq!(
            names(&katib),
            ["experiments.kubeflow.org", "trials.kubeflow.org"]
        );
        for (ours, katibs) in sextant.iter().zip(&katib) {
            assert_eq!(katibs.spec.group, "kubeflow.org");
            assert_eq!(ours.spec.names.kind, katibs.spec.names.kind);
            assert_eq!(katibs.spec.names.short_names, None, "Katib has none");
            assert_eq!(
                ours.spec.versions[0].schema, katibs.spec.versions[0].schema,
                "one schema for both groups"
            );
            assert!(
                katibs.spec.versions[0]
                    .subresources
                    .as_ref()
                    .is_some_and(|subresources| subresources.status.is_some()),
                "the status subresource"
            );
        }
    }

    #[test]
    fn schemas_are_structural_objects_with_a_required_spec_and_no_defaults() {
        // The check itself finds a default keyword and passes over a property named `default`.
        let probe = serde_json::json!({"properties": {
            "a": {"type": "string", "default": "x"},
            "default": {"type": "string"},
        }});
        assert_eq!(schema_defaults(&probe, "$"), ["$.properties.a.default"]);
        for crd in crds(ApiGroup::Katib).expect("definitions") {
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|validation| validation.open_api_v3_schema.as_ref())
                .expect("a schema");
            assert_eq!(schema.type_.as_deref(), Some("object"));
            assert_eq!(schema.required, Some(vec!["spec".to_owned()]));
            let properties = schema.properties.as_ref().expect("properties");
            assert!(properties.contains_key("spec") && properties.contains_key("status"));
            assert_eq!(properties["status"].nullable, Some(true));
            let text = serde_json::to_string(schema).expect("JSON");
            let value = serde_json::to_value(schema).expect("JSON");
            assert_eq!(
                schema_defaults(&value, "$"),
                Vec::<String>::new(),
                "in {text}"
            );
            assert!(!text.contains("$ref"), "everything inline");
        }
    }

    /// The paths of `default` keywords in a schema. Property names are not keywords: a field
    /// called `default` (a trial parameter's) is no schema default.
    fn schema_defaults(schema: &serde_json::Value, path: &str) -> Vec<String> {
        let mut found = Vec::new();
        match schema {
            serde_json::Value::Object(fields) => {
                for (key, value) in fields {
                    match (key.as_str(), value) {
                        ("default", _) => found.push(format!("{path}.default")),
                        ("properties", serde_json::Value::Object(properties)) => {
                            for (name, property) in properties {
                                found.extend(schema_defaults(
                                    property,
                                    &format!("{path}.properties.{name}"),
                                ));
                            }
                        }
                        _ => found.extend(schema_defaults(value, &format!("{path}.{key}"))),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    found.extend(schema_defaults(item, &format!("{path}[{index}]")));
                }
            }
            _ => {}
        }
        found
    }
}
