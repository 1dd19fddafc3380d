//! The Kubernetes manifests in `deploy/`: every object is valid against the official schema, the
//! kustomization applies exactly the shipped files, and the rules `deploy/README.md` states hold
//! (one controller replica, hardened and bounded containers, least-privilege RBAC that matches the
//! README's table, a Service that reaches the gRPC server).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::k8s_schema::validate;

const NAMESPACE: &str = "sextant-system";
const KUSTOMIZATION: &str = "kustomization.yaml";
/// The kustomization of Katib's API group (`sextant controller --api-group kubeflow.org`).
const KATIB_KUSTOMIZATION: &str = "katib/kustomization.yaml";
const EXAMPLE_SECRET: &str = "db-secret.example.yaml";
const CRD_FILES: [&str; 5] = [
    "crds/experiments.sextant.dev.yaml",
    "crds/trials.sextant.dev.yaml",
    "crds/pipelines.sextant.dev.yaml",
    "crds/pipelineruns.sextant.dev.yaml",
    "crds/recurringruns.sextant.dev.yaml",
];

#[test]
fn every_deploy_manifest_is_a_valid_kubernetes_object() {
    let objects = objects();
    let mut failures = Vec::new();
    for (file, object) in &objects {
        if let Err(error) = validate(object) {
            failures.push(format!("{file}: {error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let kinds: BTreeSet<&str> = objects
        .iter()
        .filter_map(|(_, object)| object["kind"].as_str())
        .collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "Secret",
    ] {
        assert!(kinds.contains(kind), "no {kind} among {kinds:?}");
    }
}

#[test]
fn deploy_crds_are_v1_definitions_of_sextant_dev_kinds_named_by_their_file() {
    for file in manifest_files()
        .into_iter()
        .filter(|file| file.starts_with("crds/"))
    {
        let documents = documents(&file);
        assert_eq!(documents.len(), 1, "{file}: one CRD per file");
        let crd = &documents[0];
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1", "{file}");
        assert_eq!(crd["kind"], "CustomResourceDefinition", "{file}");
        assert_eq!(crd["spec"]["group"], "sextant.dev", "{file}");
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(file, format!("crds/{name}.yaml"), "file named by its CRD");
        assert_eq!(
            name,
            format!(
                "{}.sextant.dev",
                crd["spec"]["names"]["plural"].as_str().unwrap_or_default()
            ),
            "{file}: a CRD is named plural.group"
        );
        let versions = crd["spec"]["versions"].as_array().expect("CRD versions");
        assert!(
            versions.iter().any(|version| version["name"] == "v1beta1"
                && version["served"] == true
                && version["storage"] == true),
            "{file}: v1beta1 is served and stored"
        );
    }
}

#[test]
fn deploy_kustomization_lists_exactly_the_shipped_manifests_crds_first() {
    let kustomization = kustomization();
    assert_eq!(
        kustomization["apiVersion"],
        "kustomize.config.k8s.io/v1beta1"
    );
    assert_eq!(kustomization["kind"], "Kustomization");
    assert_eq!(kustomization["namespace"], NAMESPACE);
    let listed = kustomization_resources();
    for file in &listed {
        assert!(
            deploy_dir().join(file).is_file(),
            "{KUSTOMIZATION} lists {file}, which does not exist"
        );
    }
    assert_eq!(
        listed[..CRD_FILES.len()],
        CRD_FILES,
        "the CRDs come first, so the kinds exist before anything uses them"
    );
    let listed: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(
        listed.len(),
        kustomization_resources().len(),
        "a file listed twice"
    );
    let shipped: BTreeSet<String> = manifest_files()
        .into_iter()
        .filter(|file| file != EXAMPLE_SECRET)
        .collect();
    assert_eq!(
        listed, shipped,
        "{KUSTOMIZATION} must list every manifest but {EXAMPLE_SECRET}"
    );
    assert!(
        !listed.contains(EXAMPLE_SECRET),
        "the example Secret would overwrite the real one"
    );
}

#[test]
fn deploy_namespaced_objects_live_in_sextant_system() {
    let cluster_scoped = [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ];
    for (file, object) in objects() {
        let kind = object["kind"].as_str().unwrap_or_default();
        let namespace = &object["metadata"]["namespace"];
        if cluster_scoped.contains(&kind) {
            assert!(namespace.is_null(), "{file}: {kind} is cluster-scoped");
        } else {
            assert_eq!(namespace, NAMESPACE, "{file}: {kind}");
        }
    }
    assert_eq!(only("Namespace", NAMESPACE)["metadata"]["name"], NAMESPACE);
}

#[test]
fn deploy_rbac_names_every_group_resource_and_verb() {
    for (file, object) in objects() {
        let Some(rules) = object.get("rules").and_then(Value::as_array) else {
            continue;
        };
        for rule in rules {
            for field in ["apiGroups", "resources", "verbs", "nonResourceURLs"] {
                let values = strings(&rule[field]);
                assert!(
                    !values.iter().any(|value| value.contains('*')),
                    "{file}: wildcard in {field} of {rule}"
                );
            }
            assert!(
                !strings(&rule["verbs"]).is_empty(),
                "{file}: a rule without verbs: {rule}"
            );
            assert!(
                !strings(&rule["resources"]).contains(&"secrets".to_owned()),
                "{file}: the controller reads no Secrets: {rule}"
            );
        }
    }
}

#[test]
fn deploy_cluster_role_is_bound_to_the_controller_and_serve_has_no_role() {
    let binding = only("ClusterRoleBinding", "sextant-controller");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "sextant-controller"})
    );
    only("ClusterRole", "sextant-controller");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sextant-controller", "namespace": NAMESPACE}])
    );
    let controller = pod_spec(&only("Deployment", "sextant-controller"));
    assert_eq!(controller["serviceAccountName"], "sextant-controller");

    let serve = pod_spec(&only("Deployment", "sextant-serve"));
    assert_eq!(serve["serviceAccountName"], "sextant-serve");
    assert_eq!(
        only("ServiceAccount", "sextant-serve")["automountServiceAccountToken"],
        false
    );
    for (file, object) in objects() {
        let bound = object["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|subject| subject["name"] == "sextant-serve");
        assert!(!bound, "{file}: sextant-serve must have no role");
    }
}

#[test]
fn deploy_readme_rbac_table_matches_the_cluster_role() {
    let role = only("ClusterRole", "sextant-controller");
    let granted: BTreeSet<Grant> = role["rules"]
        .as_array()
        .expect("the ClusterRole has rules")
        .iter()
        .map(|rule| {
            let groups = strings(&rule["apiGroups"]);
            assert_eq!(groups.len(), 1, "one API group per rule: {rule}");
            Grant {
                group: groups[0].clone(),
                resources: strings(&rule["resources"]).into_iter().collect(),
                verbs: strings(&rule["verbs"]).into_iter().collect(),
            }
        })
        .collect();
    assert_eq!(
        granted.len(),
        role["rules"].as_array().map_or(0, Vec::len),
        "two rules for the same resources"
    );
    assert_eq!(readme_rbac_table(), granted);
}

#[test]
fn deploy_persistence_agent_only_reads_as_its_readme_table_says() {
    let role = only("ClusterRole", "sextant-persistence-agent");
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().expect("the ClusterRole has rules") {
        let verbs: BTreeSet<String> = strings(&rule["verbs"]).into_iter().collect();
        assert_eq!(
            verbs,
            ["get", "list", "watch"].map(String::from).into(),
            "the agent only reads: {rule}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert((group.clone(), resource));
            }
        }
    }
    let documented: BTreeSet<(String, String)> = readme_rbac_table_in("## The persistence agent")
        .into_iter()
        .flat_map(|grant| {
            assert_eq!(
                grant.verbs,
                ["get", "list", "watch"].map(String::from).into()
            );
            grant
                .resources
                .into_iter()
                .map(move |resource| (grant.group.clone(), resource))
        })
        .collect();
    assert_eq!(documented, granted);
    let binding = only("ClusterRoleBinding", "sextant-persistence-agent");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sextant-persistence-agent", "namespace": NAMESPACE}])
    );
    let agent = pod_spec(&only("Deployment", "sextant-persistence-agent"));
    assert_eq!(agent["serviceAccountName"], "sextant-persistence-agent");
    assert_eq!(
        strings(&agent["containers"][0]["args"])[0],
        "persistence-agent"
    );
}

#[test]
fn deploy_controller_is_a_single_replica_recreated_on_rollout() {
    let controller = only("Deployment", "sextant-controller");
    assert_eq!(
        controller["spec"]["replicas"], 1,
        "no leader election: two controllers would both create trials"
    );
    assert_eq!(
        controller["spec"]["strategy"],
        json!({"type": "Recreate"}),
        "a rolling update would run two controllers at once"
    );
}

#[test]
fn deploy_every_container_is_hardened_and_bounded() {
    let mut containers_seen = 0;
    for (file, object) in objects() {
        if object["kind"] != "Deployment" {
            continue;
        }
        let pod = pod_spec(&object);
        let pod_security = &pod["securityContext"];
        let containers = pod["containers"]
            .as_array()
            .into_iter()
            .chain(pod["initContainers"].as_array())
            .flatten();
        for container in containers {
            containers_seen += 1;
            let name = format!("{file}: container {}", container["name"]);
            let security = &container["securityContext"];
            let effective = |field: &str| {
                Some(&security[field])
                    .filter(|value| !value.is_null())
                    .unwrap_or(&pod_security[field])
                    .clone()
            };
            assert_eq!(effective("runAsNonRoot"), true, "{name}");
            assert_eq!(
                effective("seccompProfile"),
                json!({"type": "RuntimeDefault"}),
                "{name}"
            );
            assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
            assert!(
                strings(&security["capabilities"]["drop"]).contains(&"ALL".to_owned()),
                "{name}"
            );
            assert!(
                security["capabilities"]["add"].is_null(),
                "{name} adds capabilities"
            );
            assert_ne!(security["privileged"], true, "{name}");
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    assert!(
                        !container["resources"][bound][resource].is_null(),
                        "{name} has no {resource} {bound}"
                    );
                }
            }
        }
    }
    assert!(containers_seen >= 2, "both Deployments were checked");
    let controller = pod_spec(&only("Deployment", "sextant-controller"));
    assert_eq!(
        controller["containers"][0]["resources"]["limits"]["memory"],
        "256Mi"
    );
}

#[test]
fn deploy_service_selects_the_serve_pods_on_a_declared_port() {
    let service = only("Service", "sextant-serve");
    let serve = only("Deployment", "sextant-serve");
    let pod_labels = &serve["spec"]["template"]["metadata"]["labels"];
    let selector = service["spec"]["selector"]
        .as_object()
        .expect("the Service has a selector");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(
            &pod_labels[key], value,
            "serve pods lack selector label {key}"
        );
    }
    let controller = only("Deployment", "sextant-controller");
    let controller_labels = &controller["spec"]["template"]["metadata"]["labels"];
    assert!(
        selector
            .iter()
            .any(|(key, value)| &controller_labels[key] != value),
        "the Service must not also select the controller"
    );

    let ports = service["spec"]["ports"].as_array().expect("Service ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"], "grpc");
    assert_eq!(ports[0]["port"], 6789);
    let container = &pod_spec(&serve)["containers"][0];
    let declared = declared_port(container, &ports[0]["targetPort"])
        .expect("the Service targets a port the serve container declares");
    assert_eq!(declared["containerPort"], 6789);
    let args = strings(&container["args"]);
    assert_eq!(
        args,
        ["serve", "--listen", "0.0.0.0:6789"],
        "serve listens on all interfaces at the declared port"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = &container[probe]["tcpSocket"]["port"];
        assert!(
            declared_port(container, port).is_some(),
            "{probe} is a tcpSocket probe on a declared port"
        );
    }
}

#[test]
fn deploy_controller_reaches_serve_and_answers_its_probes() {
    let service = only("Service", "sextant-serve");
    let container = pod_spec(&only("Deployment", "sextant-controller"))["containers"][0].clone();
    let db_manager = env_var(&container, "SEXTANT_DB_MANAGER");
    assert_eq!(
        db_manager["value"],
        format!(
            "{}.{}.svc:{}",
            service["metadata"]["name"].as_str().unwrap_or_default(),
            service["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default(),
            service["spec"]["ports"][0]["port"]
        ),
        "trials push metrics to the serve Service"
    );
    let args = strings(&container["args"]);
    assert_eq!(args[0], "controller");
    let listen = args
        .windows(2)
        .find(|pair| pair[0] == "--health-listen")
        .map(|pair| pair[1].clone())
        .expect("--health-listen is set");
    assert!(listen.starts_with("0.0.0.0:"), "the kubelet must reach it");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let http = &container[probe]["httpGet"];
        assert_eq!(http["path"], path, "{probe}");
        let declared = declared_port(&container, &http["port"])
            .unwrap_or_else(|| panic!("{probe} probes a declared port"));
        assert_eq!(
            format!("0.0.0.0:{}", declared["containerPort"]),
            listen,
            "{probe} probes the port the health server listens on"
        );
    }
}

#[test]
fn deploy_database_url_comes_from_the_secret_the_example_shows() {
    let example = only("Secret", "sextant-db");
    let url = example["stringData"]["url"]
        .as_str()
        .expect("the example has stringData.url");
    assert!(url.starts_with("postgres://") || url.starts_with("mysql://"));
    for name in ["sextant-controller", "sextant-serve"] {
        let container = pod_spec(&only("Deployment", name))["containers"][0].clone();
        assert_eq!(
            env_var(&container, "SEXTANT_DB")["valueFrom"],
            json!({"secretKeyRef": {"name": "sextant-db", "key": "url"}}),
            "{name}"
        );
    }
}

#[test]
fn deploy_validator_rejects_a_misspelled_field_naming_its_path() {
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "trial-1", "namespace": "default"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containerz": [{"name": "train", "image": "python:3.12"}]
        }}}
    });
    let error = validate(&job).expect_err("a misspelled field is rejected");
    assert!(
        error.contains("spec.template.spec.containerz: unknown field"),
        "{error}"
    );
    assert!(
        error.contains("spec.template.spec: \"containers\" is a required property"),
        "{error}"
    );

    let mut fixed = job.clone();
    let pod = &mut fixed["spec"]["template"]["spec"];
    pod["containers"] = pod["containerz"].take();
    pod.as_object_mut().expect("pod spec").remove("containerz");
    assert_eq!(validate(&fixed), Ok(()), "the same Job spelled right");
}

#[test]
fn deploy_validator_rejects_a_string_replica_count_naming_its_path() {
    let mut deployment = only("Deployment", "sextant-controller");
    assert_eq!(validate(&deployment), Ok(()));
    deployment["spec"]["replicas"] = json!("one");
    let error = validate(&deployment).expect_err("replicas must be an integer");
    assert!(
        error.contains("spec.replicas: \"one\" is not of type \"integer\""),
        "{error}"
    );
}

/// One RBAC rule: an API group, its resources and the verbs granted on them.
#[test]
fn deploy_katib_lists_katibs_definitions_first_and_its_role() {
    let kustomization = documents(KATIB_KUSTOMIZATION).remove(0);
    assert_eq!(kustomization["kind"], "Kustomization");
    assert_eq!(
        strings(&kustomization["resources"]),
        [
            "crds/experiments.kubeflow.org.yaml",
            "crds/trials.kubeflow.org.yaml",
            "rbac.yaml"
        ],
        "the definitions first, then the role; nothing outside the folder (kustomize refuses that)"
    );
    for file in ["experiments", "trials"] {
        let relative = format!("katib/crds/{file}.kubeflow.org.yaml");
        let crd = documents(&relative).remove(0);
        validate(&crd).unwrap_or_else(|error| panic!("{relative}: {error}"));
        assert_eq!(crd["spec"]["group"], "kubeflow.org", "{relative}");
        assert_eq!(crd["spec"]["names"]["plural"], file, "{relative}");
        assert_eq!(
            crd["spec"]["names"]["categories"],
            json!(["all", "kubeflow", "katib"]),
            "{relative}: Katib's categories"
        );
    }
}

#[test]
fn deploy_katib_role_grants_katibs_group_what_the_base_role_grants_sextants() {
    let objects = documents("katib/rbac.yaml");
    for object in &objects {
        validate(object).unwrap_or_else(|error| panic!("katib/rbac.yaml: {error}"));
    }
    let role = objects
        .iter()
        .find(|object| object["kind"] == "ClusterRole")
        .expect("a ClusterRole");
    let base = only("ClusterRole", "sextant-controller");
    // The Experiment and Trial rules; Katib's group has no pipeline kinds.
    let katib_kind = |resource: &String| {
        ["experiments", "trials"]
            .iter()
            .any(|kind| resource == kind || resource.starts_with(&format!("{kind}/")))
    };
    let mut expected: Vec<Value> = base["rules"]
        .as_array()
        .expect("base rules")
        .iter()
        .filter(|rule| {
            strings(&rule["apiGroups"]) == ["sextant.dev"]
                && strings(&rule["resources"]).iter().all(katib_kind)
        })
        .cloned()
        .collect();
    for rule in &mut expected {
        rule["apiGroups"] = json!(["kubeflow.org"]);
    }
    assert_eq!(
        role["rules"],
        json!(expected),
        "the same rules, in Katib's group"
    );
    let binding = objects
        .iter()
        .find(|object| object["kind"] == "ClusterRoleBinding")
        .expect("a ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "sextant-controller", "namespace": NAMESPACE}])
    );
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resources: BTreeSet<String>,
    verbs: BTreeSet<String>,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The YAML files of `deploy/` and `deploy/crds/` but the kustomization, relative to `deploy/`.
fn manifest_files() -> Vec<String> {
    let mut files = Vec::new();
    for folder in ["", "crds"] {
        let Ok(entries) = std::fs::read_dir(deploy_dir().join(folder)) else {
            continue;
        };
        for entry in entries {
            let name = entry
                .expect("a readable entry")
                .file_name()
                .into_string()
                .expect("a UTF-8 file name");
            if name.ends_with(".yaml") && name != KUSTOMIZATION {
                files.push(if folder.is_empty() {
                    name
                } else {
                    format!("{folder}/{name}")
                });
            }
        }
    }
    files.sort();
    files
}

/// The documents of one manifest file; empty documents are skipped, as `kubectl` does.
fn documents(relative: &str) -> Vec<Value> {
    let path = deploy_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{relative} is not YAML: {error}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// Every object of every manifest file, with the file it is in.
fn objects() -> Vec<(String, Value)> {
    manifest_files()
        .into_iter()
        .flat_map(|file| {
            documents(&file)
                .into_iter()
                .map(move |object| (file.clone(), object))
        })
        .collect()
}

/// The one object of `kind` named `name`.
fn only(kind: &str, name: &str) -> Value {
    let mut found: Vec<Value> = objects()
        .into_iter()
        .map(|(_, object)| object)
        .filter(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} {name}");
    found.remove(0)
}

fn kustomization() -> Value {
    let mut documents = documents(KUSTOMIZATION);
    assert_eq!(documents.len(), 1);
    documents.remove(0)
}

fn kustomization_resources() -> Vec<String> {
    strings(&kustomization()["resources"])
}

fn pod_spec(deployment: &Value) -> Value {
    deployment["spec"]["template"]["spec"].clone()
}

/// The strings of a JSON array; anything else gives none.
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// The container port `port` (a name or a number) refers to, if the container declares it.
fn declared_port<'a>(container: &'a Value, port: &Value) -> Option<&'a Value> {
    container["ports"]
        .as_array()?
        .iter()
        .find(|declared| match port {
            Value::String(name) => declared["name"] == name.as_str(),
            number => declared["containerPort"] == *number,
        })
}

fn env_var(container: &Value, name: &str) -> Value {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|variable| variable["name"] == name)
        .unwrap_or_else(|| panic!("{name} is set in {}", container["name"]))
        .clone()
}

/// The README's permission table, one grant per (group, resources) with the verbs of its rows
/// joined: `| `group` | `resource`, ... | `verb`, ... | why |`, the core group written `""`.
fn readme_rbac_table() -> BTreeSet<Grant> {
    readme_rbac_table_in("## Permissions")
}

/// The grants of the first RBAC table after the heading `section` of `deploy/README.md`.
fn readme_rbac_table_in(section: &str) -> BTreeSet<Grant> {
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).expect("deploy/README.md");
    let rows = readme
        .lines()
        .skip_while(|line| *line != section)
        .skip_while(|line| !line.starts_with("| API group | resources | verbs |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'));
    let mut verbs_by_target: BTreeMap<(String, BTreeSet<String>), BTreeSet<String>> =
        BTreeMap::new();
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let quoted = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(|token| token.trim_matches('"').to_owned())
                .collect()
        };
        let group = quoted(cells[1]);
        assert_eq!(group.len(), 1, "one group per row: {row}");
        let target = (group[0].clone(), quoted(cells[2]).into_iter().collect());
        verbs_by_target
            .entry(target)
            .or_default()
            .extend(quoted(cells[3]));
    }
    assert!(!verbs_by_target.is_empty(), "README.md has no RBAC table");
    verbs_by_target
        .into_iter()
        .map(|((group, resources), verbs)| Grant {
            group,
            resources,
            verbs,
        })
        .collect()
}
