//! The OpenAPI 3.1 document of the API, served at `/api/v1/openapi.json`.
//!
//! utoipa writes the paths and the server's own types from the handlers' annotations. Katib's
//! Experiment and everything in it are described by the JSON Schema schemars derives for those
//! types (the same derive the CRDs' schemas come from, so the document cannot drift from
//! what the server parses); OpenAPI 3.1 schemas are JSON Schema 2020-12, so those definitions
//! go into `components.schemas` as they are, in place of utoipa's placeholder for
//! `Experiment`.

use std::borrow::Cow;
use std::sync::OnceLock;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use sextant_experiment::Experiment;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema};
use utoipa::{OpenApi, PartialSchema, ToSchema};

use crate::AppState;

/// Stands for Katib's Experiment in utoipa's annotations; its schema is replaced by
/// schemars' in [`document`].
pub struct KatibExperiment;

impl PartialSchema for KatibExperiment {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().build().into()
    }
}

impl ToSchema for KatibExperiment {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Experiment")
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sextant",
        description = "Experiments, trials and studies of a sextant server. Experiments are Katib's kubeflow.org/v1beta1 Experiment, field for field.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::experiments::create,
        crate::experiments::list,
        crate::experiments::read,
        crate::experiments::stop,
        crate::experiments::resume,
        crate::experiments::delete,
        crate::importance::read,
        crate::trials::list,
        crate::trials::read,
        crate::trials::observations,
        crate::trials::report,
        crate::trials::log,
        crate::studies::create,
        crate::studies::ask,
        crate::studies::tell,
        crate::runs::create,
        crate::runs::list,
        crate::runs::read,
        crate::runs::stop,
        crate::runs::retry,
        crate::runs::step_log,
        crate::runs::artifacts,
        crate::runs::download,
        crate::runs::delete,
        crate::trials::artifacts,
        crate::trials::download,
        crate::pipeline_graph::read,
        crate::pipeline_graph::trial_runs,
        crate::recurring::create,
        crate::recurring::list,
        crate::recurring::read,
        crate::recurring::enable,
        crate::recurring::disable,
        crate::recurring::delete,
        crate::events::stream,
        openapi_json,
    ),
    components(schemas(
        crate::events::Event,
        crate::trials::TrialOrder,
        crate::runs::LogStream,
    )),
    tags(
        (name = "experiments", description = "Katib Experiments the server runs"),
        (name = "trials", description = "Their trials, metric series and output"),
        (name = "studies", description = "Ask and tell: experiments whose client runs the trials"),
        (name = "runs", description = "Pipeline runs on the server's machine"),
        (name = "recurring runs", description = "Pipelines on a cron schedule, each firing a run"),
        (name = "events", description = "What changes, as Server-Sent Events"),
    )
)]
struct ApiDoc;

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    settings.meta_schema = None;
    let mut generator = settings.into_generator();
    generator.subschema_for::<Experiment>();
    let definitions = generator.take_definitions(true);
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, schema) in definitions {
            schemas.insert(name, schema);
        }
    }
    document
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(
    operation_id = "getOpenApiDocument",
    get,
    path = "/api/v1/openapi.json",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object)),
    tag = "experiments"
)]
pub(crate) async fn openapi_json() -> axum::Json<&'static Value> {
    axum::Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katib_types_do_not_collide_with_the_servers_own() {
        let ours = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let ours = ours["components"]["schemas"].as_object().unwrap();
        let mut settings = schemars::generate::SchemaSettings::draft2020_12();
        settings.definitions_path = "/components/schemas".into();
        let mut generator = settings.into_generator();
        generator.subschema_for::<Experiment>();
        for name in generator.take_definitions(true).keys() {
            assert!(
                name == "Experiment" || !ours.contains_key(name),
                "{name} is both a Katib type and one of the server's"
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let text = document.to_string();
        let mut missing = Vec::new();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = &reference[..reference.find('"').unwrap()];
            let pointer = target.trim_start_matches('#');
            if document.pointer(pointer).is_none() {
                missing.push(target.to_string());
            }
        }
        assert!(missing.is_empty(), "unresolved references: {missing:?}");
        assert_eq!(document["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
        assert!(document["components"]["schemas"]["Experiment"]["properties"]["spec"].is_object());
    }
}
