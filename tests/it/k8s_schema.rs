//! Validation of Kubernetes objects against the official OpenAPI schema, as strict as the API
//! server.
//!
//! The schema is the Kubernetes v1.35 OpenAPI v2 (swagger) spec, cut down by
//! `tests/data/k8s/subset.py` to the kinds Sextant ships or generates and copied there unchanged.
//! The swagger's definitions are a Draft 4 JSON Schema, but looser than the API server in ways that
//! would let broken manifests through, so they are tightened when loaded:
//!
//! - Every object schema that lists `properties` and says nothing of `additionalProperties` is
//!   closed (`additionalProperties: false`). The swagger leaves them open, yet these are Go structs:
//!   `kubectl apply` (strict field validation, the default since 1.27) rejects an unknown field,
//!   so a misspelled one must fail here too. Maps (`labels`, `data`) declare
//!   `additionalProperties` and stay as declared; schemaless objects (`FieldsV1`, `RawExtension`)
//!   list no properties and stay open.
//! - `IntOrString` is declared a string with `format: int-or-string`; it takes an integer or a
//!   string. `Quantity` is declared a string; it takes a number (`cpu: 1` in YAML) or a string in
//!   the quantity grammar (`format: quantity`), so `memory: 256MB` fails as it does on a cluster.
//! - `JSONSchemaPropsOrArray`, `...OrBool` and `...OrStringArray` are declared with no type at all;
//!   they get their two shapes, so a CustomResourceDefinition's nested `items` and
//!   `additionalProperties` schemas are checked as closely as its top level.
//! - `format: int32` gets its range, `format: byte` (Secret `data`) must be base64, and
//!   `format: date-time` must be RFC 3339.
//!
//! Not modelled: `null` for an optional field is rejected (the API server reads it as absent;
//! nothing Sextant writes or generates carries one), nor are name syntax, CEL rules
//! (`x-kubernetes-validations`) and cross-field rules checked.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use serde_json::{Map, Value, json};

/// Checks `object` against the definition its `apiVersion` and `kind` name.
///
/// The error lists every violation on its own line, each with the JSON path of the offending
/// value in `kubectl`'s notation (`spec.template.spec.containers[0].image`).
pub fn validate(object: &Value) -> Result<(), String> {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or("the object has no string `apiVersion`")?;
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("the object has no string `kind`")?;
    let validator = validators()
        .get(&(api_version.to_owned(), kind.to_owned()))
        .ok_or_else(|| {
            format!(
                "no schema for {kind} in {api_version}: add its definition to \
                 tests/data/k8s/subset.py and regenerate"
            )
        })?;
    let violations: Vec<String> = validator.iter_errors(object).flat_map(describe).collect();
    if violations.is_empty() {
        return Ok(());
    }
    let name = object["metadata"]["name"].as_str().unwrap_or("(unnamed)");
    let mut message = format!("{kind} {name} is invalid:");
    for violation in violations {
        write!(message, "\n  {violation}").expect("writing to a String cannot fail");
    }
    Err(message)
}

const SUBSET: &str = include_str!("../data/k8s/swagger-v1.35-subset.json");

const DEFINITIONS: &str = "#/definitions/";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const SCHEMA_PROPS: &str =
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";

/// One validator per (apiVersion, kind), compiled once for the whole test binary.
fn validators() -> &'static HashMap<(String, String), Validator> {
    static VALIDATORS: OnceLock<HashMap<(String, String), Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let spec: Value = serde_json::from_str(SUBSET).expect("the schema subset is JSON");
        let Some(Value::Object(mut definitions)) = spec.get("definitions").cloned() else {
            panic!("the schema subset has no definitions");
        };
        tighten(&mut definitions);
        let document = json!({ "definitions": definitions });
        let compiled = jsonschema::draft4::options()
            .should_validate_formats(true)
            .with_format("byte", is_base64)
            .with_format("quantity", is_quantity)
            .build_map(&document)
            .expect("the tightened schema compiles");
        let mut validators = HashMap::new();
        for (name, definition) in &definitions {
            let kinds = definition["x-kubernetes-group-version-kind"].as_array();
            for group_version_kind in kinds.into_iter().flatten() {
                let group = group_version_kind["group"].as_str().unwrap_or_default();
                let version = group_version_kind["version"].as_str().unwrap_or_default();
                let kind = group_version_kind["kind"].as_str().unwrap_or_default();
                let api_version = if group.is_empty() {
                    version.to_owned()
                } else {
                    format!("{group}/{version}")
                };
                let validator = compiled
                    .get(&format!("{DEFINITIONS}{name}"))
                    .unwrap_or_else(|| panic!("{name} was compiled"))
                    .clone();
                validators.insert((api_version, kind.to_owned()), validator);
            }
        }
        validators
    })
}

/// Makes the swagger's definitions as strict as the API server; see the module documentation.
fn tighten(definitions: &mut Map<String, Value>) {
    for definition in definitions.values_mut() {
        close_objects(definition);
    }
    definitions.insert(
        INT_OR_STRING.to_owned(),
        json!({ "type": ["integer", "string"] }),
    );
    definitions.insert(
        QUANTITY.to_owned(),
        json!({ "type": ["number", "string"], "format": "quantity" }),
    );
    let schema_props = definitions
        .get(SCHEMA_PROPS)
        .cloned()
        .expect("the subset defines JSONSchemaProps");
    let schema_props_ref = json!({ "$ref": format!("{DEFINITIONS}{SCHEMA_PROPS}") });
    definitions.insert(
        format!("{SCHEMA_PROPS}OrArray"),
        object_or(&schema_props, "array", Some(schema_props_ref)),
    );
    definitions.insert(
        format!("{SCHEMA_PROPS}OrBool"),
        object_or(&schema_props, "boolean", None),
    );
    definitions.insert(
        format!("{SCHEMA_PROPS}OrStringArray"),
        object_or(&schema_props, "array", Some(json!({ "type": "string" }))),
    );
}

/// Closes `schema` and every schema nested in it, and bounds its int32 fields.
///
/// It walks schema positions only (`properties`, `additionalProperties`, `items`): a property
/// named `format` or `type` in JSONSchemaProps is a field, not a keyword.
fn close_objects(schema: &mut Value) {
    let Some(node) = schema.as_object_mut() else {
        return;
    };
    if node.get("format").and_then(Value::as_str) == Some("int32") {
        node.insert("minimum".to_owned(), json!(i32::MIN));
        node.insert("maximum".to_owned(), json!(i32::MAX));
    }
    if let Some(Value::Object(properties)) = node.get_mut("properties") {
        properties.values_mut().for_each(close_objects);
        if !node.contains_key("additionalProperties") {
            node.insert("additionalProperties".to_owned(), Value::Bool(false));
        }
    }
    if let Some(additional) = node.get_mut("additionalProperties") {
        close_objects(additional);
    }
    if let Some(items) = node.get_mut("items") {
        close_objects(items);
    }
}

/// A schema taking either an object valid against `object_schema` or a value of `other_type`.
///
/// The object keywords (`properties`, `additionalProperties`) do not apply to arrays or booleans
/// and `items` does not apply to objects, so one schema holds both shapes, and a violation inside
/// either one is reported at its own path instead of as a bare "matches no alternative".
fn object_or(object_schema: &Value, other_type: &str, items: Option<Value>) -> Value {
    let mut schema = object_schema.clone();
    schema["type"] = json!(["object", other_type]);
    if let Some(items) = items {
        schema["items"] = items;
    }
    schema
}

/// Whether `text` is standard base64 with padding, as Go's `encoding/base64` expects for `[]byte`.
fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    text.len().is_multiple_of(4)
        && padding <= 2
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/')
}

/// Whether `text` is in the quantity grammar of `k8s.io/apimachinery/pkg/api/resource`: a signed
/// decimal number, then a binary suffix (`Ki` to `Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`
/// to `E`) or a decimal exponent (`e3`).
fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_end = unsigned
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let digits = number.replacen('.', "", 1);
    let is_digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|exponent| exponent.strip_prefix(['+', '-']).unwrap_or(exponent));
    is_digits(&digits)
        && (matches!(
            suffix,
            "" | "Ki"
                | "Mi"
                | "Gi"
                | "Ti"
                | "Pi"
                | "Ei"
                | "n"
                | "u"
                | "m"
                | "k"
                | "M"
                | "G"
                | "T"
                | "P"
                | "E"
        ) || exponent.is_some_and(is_digits))
}

/// One line per violation: `path: what is wrong`, an unknown field named by its own path.
fn describe(error: ValidationError<'_>) -> Vec<String> {
    let path = kubectl_path(&error);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|field| format!("{}: unknown field", join(&path, field)))
            .collect(),
        _ => vec![format!(
            "{}: {}",
            if path.is_empty() { "(root)" } else { &path },
            error
        )],
    }
}

/// The instance path as `kubectl` writes it: `spec.containers[0].name`, with keys that are not
/// plain words quoted (`metadata.labels["app.kubernetes.io/name"]`).
fn kubectl_path(error: &ValidationError<'_>) -> String {
    let mut path = String::new();
    for segment in error.instance_path() {
        match segment {
            LocationSegment::Index(index) => write!(path, "[{index}]"),
            LocationSegment::Property(key) => {
                let plain = key
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
                if !plain {
                    write!(path, "[{key:?}]")
                } else if path.is_empty() {
                    write!(path, "{key}")
                } else {
                    write!(path, ".{key}")
                }
            }
        }
        .expect("writing to a String cannot fail");
    }
    path
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::validate;

    fn deployment(container: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [container]}
                }
            }
        })
    }

    fn crd(schema: Value) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"kind": "Widget", "plural": "widgets"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1",
                    "served": true,
                    "storage": true,
                    "schema": {"openAPIV3Schema": schema}
                }]
            }
        })
    }

    fn assert_violation(object: &Value, expected: &str) {
        let error = validate(object).expect_err("the object is invalid");
        assert!(
            error.contains(expected),
            "expected {expected:?} in:\n{error}"
        );
    }

    #[test]
    fn int_or_string_takes_a_number_or_a_name_and_nothing_else() {
        let service = |target_port: Value| {
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"ports": [{"port": 80, "targetPort": target_port}]}
            })
        };
        assert_eq!(validate(&service(json!(8080))), Ok(()));
        assert_eq!(validate(&service(json!("http"))), Ok(()));
        assert_violation(
            &service(json!(true)),
            "spec.ports[0].targetPort: true is not of type",
        );
    }

    #[test]
    fn quantities_take_numbers_and_suffixed_strings_but_not_other_units() {
        let with_limits = |limits: Value| {
            deployment(json!({"name": "web", "image": "nginx", "resources": {"limits": limits}}))
        };
        for limits in [
            json!({"cpu": 1, "memory": "256Mi"}),
            json!({"cpu": "500m", "memory": "1G"}),
            json!({"cpu": 0.5, "memory": "1e9"}),
            json!({"cpu": "-.5", "memory": "1.5Gi", "ephemeral-storage": "+2E"}),
        ] {
            assert_eq!(validate(&with_limits(limits.clone())), Ok(()), "{limits}");
        }
        for wrong in ["1..5", ".", "1Kb", "1e", "Mi"] {
            assert_violation(&with_limits(json!({"cpu": wrong})), "is not a \"quantity\"");
        }
        assert_violation(
            &with_limits(json!({"memory": "256MB"})),
            "spec.template.spec.containers[0].resources.limits.memory: \"256MB\" is not a \"quantity\"",
        );
    }

    #[test]
    fn int32_fields_are_bounded() {
        let mut object = deployment(json!({"name": "web", "image": "nginx"}));
        object["spec"]["replicas"] = json!(3_000_000_000_u64);
        assert_violation(
            &object,
            "spec.replicas: 3000000000 is greater than the maximum",
        );
    }

    #[test]
    fn unknown_fields_are_named_by_path_and_map_keys_stay_free() {
        let object =
            deployment(json!({"name": "web", "image": "nginx", "imagePullPolicy": "Always"}));
        assert_eq!(validate(&object), Ok(()));
        let misspelled =
            deployment(json!({"name": "web", "image": "nginx", "imagePullPolicyy": "Always"}));
        assert_violation(
            &misspelled,
            "spec.template.spec.containers[0].imagePullPolicyy: unknown field",
        );
        let mut top_level = object.clone();
        top_level["spce"] = json!({});
        assert_violation(&top_level, "spce: unknown field");
    }

    #[test]
    fn enumerated_fields_reject_other_values() {
        let mut object = deployment(json!({"name": "web", "image": "nginx"}));
        object["spec"]["strategy"] = json!({"type": "Recreated"});
        assert_violation(&object, "spec.strategy.type: \"Recreated\" is not one of");
    }

    #[test]
    fn secret_data_must_be_base64_and_timestamps_rfc3339() {
        let secret = |data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": data});
        assert_eq!(
            validate(&secret(json!({"url": "cG9zdGdyZXM6Ly8="}))),
            Ok(())
        );
        assert_violation(
            &secret(json!({"url": "postgres://user:pw@db/sextant"})),
            "data.url: \"postgres://user:pw@db/sextant\" is not a \"byte\"",
        );
        let mut stamped = secret(json!({}));
        stamped["metadata"]["creationTimestamp"] = json!("yesterday");
        assert_violation(
            &stamped,
            "metadata.creationTimestamp: \"yesterday\" is not a \"date-time\"",
        );
    }

    #[test]
    fn crd_schemas_are_checked_at_every_depth() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "sizes": {"type": "array", "items": {"type": "integer", "format": "int32"}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "closed": {"type": "object", "additionalProperties": false},
                        "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}
                    },
                    "required": ["sizes"]
                },
                "status": {"type": "object", "nullable": true}
            }
        });
        assert_eq!(validate(&crd(schema.clone())), Ok(()));

        let mut nested_typo = schema.clone();
        nested_typo["properties"]["spec"]["properties"]["sizes"]["items"]["formt"] = json!("int32");
        assert_violation(
            &crd(nested_typo),
            "spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.sizes.items.formt: unknown field",
        );
        let mut map_typo = schema.clone();
        map_typo["properties"]["spec"]["properties"]["labels"]["additionalProperties"]["typ"] =
            json!("string");
        assert_violation(&crd(map_typo), "additionalProperties.typ: unknown field");
        let mut wrong_shape = schema;
        wrong_shape["properties"]["spec"]["properties"]["sizes"]["items"] = json!("integer");
        assert_violation(&crd(wrong_shape), "sizes.items: \"integer\" is not of type");
    }

    #[test]
    fn an_unknown_kind_or_version_is_an_error_not_a_pass() {
        let mut object = deployment(json!({"name": "web", "image": "nginx"}));
        object["apiVersion"] = json!("apps/v1beta1");
        assert_violation(&object, "no schema for Deployment in apps/v1beta1");
        assert_violation(&json!({"kind": "Deployment"}), "no string `apiVersion`");
    }
}
