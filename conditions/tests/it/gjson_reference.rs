//! Our evaluator against two references on generated conditions and documents: Go's gjson,
//! the library Katib calls (built from Debian's package by `scripts/gjson-oracle`), which
//! decides; and the `gjson` crate, the GJSON author's own Rust port, which the crate docs
//! explain we do not use (it disagrees with Go's gjson where ours agrees).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};
use sextant_conditions::Condition;

/// How many condition and document pairs each run compares.
const CASES: usize = 20_000;

/// Katib's verdict from a gjson (Rust crate) result: an object, or an array with an element.
fn crate_verdict(document: &str, path: &str) -> bool {
    let result = gjson::get(document, path);
    match result.kind() {
        gjson::Kind::Object => true,
        gjson::Kind::Array => !result.array().is_empty(),
        _ => false,
    }
}

/// Go gjson's verdicts for `cases`, one per case, from the oracle process.
fn go_verdicts(cases: &[(String, Value)]) -> Vec<bool> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = Command::new(root.join("scripts/gjson-oracle"))
        .output()
        .expect("run scripts/gjson-oracle");
    assert!(
        built.status.success(),
        "scripts/gjson-oracle failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    let oracle = String::from_utf8(built.stdout).expect("a UTF-8 path");
    let mut child = Command::new(oracle.trim())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the gjson oracle");
    let mut input = Vec::new();
    for (path, document) in cases {
        serde_json::to_writer(&mut input, &json!([path, document])).expect("JSON");
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().expect("the oracle's stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("the oracle's output");
    writer.join().expect("writer thread").expect("write cases");
    assert!(output.status.success(), "the gjson oracle failed");
    let verdicts: Vec<bool> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| line == "1")
        .collect();
    assert_eq!(verdicts.len(), cases.len(), "one verdict per case");
    verdicts
}

/// `CASES` generated pairs whose condition our parser accepts, from a fixed seed.
fn cases() -> Vec<(String, Value)> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = (path(), document());
    let mut cases = Vec::with_capacity(CASES);
    while cases.len() < CASES {
        let (path, document) = strategy
            .new_tree(&mut runner)
            .expect("a generated case")
            .current();
        if Condition::parse(&path).is_ok() {
            cases.push((path, document));
        }
    }
    cases
}

#[test]
fn verdicts_agree_with_go_gjson_where_the_gjson_crate_does_not() {
    let cases = cases();
    let go = go_verdicts(&cases);
    let mut crate_disagrees = Vec::new();
    let mut met = 0;
    for ((path, document), go) in cases.iter().zip(go) {
        let ours = Condition::parse(path)
            .expect("parsed above")
            .is_met(document);
        assert_eq!(
            ours, go,
            "condition {path} on {document}: ours {ours}, Go gjson {go}"
        );
        met += usize::from(ours);
        if crate_verdict(&document.to_string(), path) != ours {
            crate_disagrees.push(path);
        }
    }
    // Both verdicts occur often enough for the agreement to mean something.
    assert!(
        met > CASES / 50 && met < CASES - CASES / 50,
        "{met} of {CASES} met"
    );
    println!(
        "{CASES} cases: ours agrees with Go gjson on all, {met} met; the gjson crate disagrees on {}, e.g. {:?}",
        crate_disagrees.len(),
        crate_disagrees.iter().take(5).collect::<Vec<_>>()
    );
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("status".to_owned()),
        Just("conditions".to_owned()),
        Just("phase".to_owned()),
        Just("type".to_owned()),
        Just("reason".to_owned()),
        Just("replicaStatuses".to_owned()),
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("0".to_owned()),
        Just("1".to_owned()),
        Just("#".to_owned()),
        Just("@this".to_owned()),
    ]
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#""Complete""#.to_owned()),
        Just(r#""Failed""#.to_owned()),
        Just(r#""True""#.to_owned()),
        Just("True".to_owned()),
        Just(r#""Succeeded""#.to_owned()),
        Just("1".to_owned()),
        Just("2.5".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just(r#""a*""#.to_owned()),
        Just(r#""S?cceeded""#.to_owned()),
    ]
}

fn operator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("=="),
        Just("="),
        Just("!="),
        Just("<"),
        Just("<="),
        Just(">"),
        Just(">="),
        Just("%"),
        Just("!%"),
    ]
}

fn query() -> impl Strategy<Value = String> {
    (key(), operator(), literal(), any::<bool>(), any::<bool>()).prop_map(
        |(key, op, value, all, bare)| {
            let body = if bare {
                key
            } else {
                format!("{key}{op}{value}")
            };
            format!("#({body}){}", if all { "#" } else { "" })
        },
    )
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![4 => key(), 3 => query(), 1 => Just("[@this]".to_owned())]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![1 => katib_default(), 6 => generated_path()]
}

/// The conditions Katib and Sextant default to, which every trial of those kinds meets.
fn katib_default() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(sextant_conditions::JOB_SUCCESS),
        Just(sextant_conditions::JOB_FAILURE),
        Just(sextant_conditions::TRAINING_JOB_SUCCESS),
        Just(sextant_conditions::ARGO_SUCCESS),
        Just(sextant_conditions::ARGO_FAILURE),
        Just(sextant_conditions::TEKTON_SUCCESS),
        Just(sextant_conditions::TEKTON_FAILURE),
    ]
    .prop_map(str::to_owned)
}

fn generated_path() -> impl Strategy<Value = String> {
    prop::collection::vec((component(), any::<bool>()), 1..6).prop_map(|parts| {
        let mut text = String::new();
        for (index, (part, pipe)) in parts.into_iter().enumerate() {
            if index > 0 {
                text.push(if pipe { '|' } else { '.' });
            }
            text.push_str(&part);
        }
        text
    })
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        Just(json!(2.5)),
        prop_oneof![
            Just("Complete"),
            Just("Failed"),
            Just("True"),
            Just("False"),
            Just("Succeeded"),
            Just("Running"),
            Just("abc"),
        ]
        .prop_map(Value::from),
    ]
}

fn random_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// Run objects as Katib sees them: a Job, an Argo Workflow, a Kubeflow TFJob.
fn run_object() -> impl Strategy<Value = Value> {
    let condition = (
        prop_oneof![
            Just("Complete"),
            Just("Failed"),
            Just("Succeeded"),
            Just("Running")
        ],
        prop_oneof![Just("True"), Just("False")],
    )
        .prop_map(
            |(kind, status)| json!({"type": kind, "status": status, "reason": "R", "message": "m"}),
        );
    let conditions = prop::collection::vec(condition, 0..4);
    prop_oneof![
        conditions
            .clone()
            .prop_map(|conditions| json!({"kind": "Job", "status": {"conditions": conditions}})),
        prop_oneof![
            Just("Running"),
            Just("Succeeded"),
            Just("Failed"),
            Just("Error")
        ]
        .prop_map(|phase| json!({"kind": "Workflow", "status": {"phase": phase}})),
        conditions.prop_map(|conditions| json!({
            "kind": "TFJob",
            "status": {"conditions": conditions, "replicaStatuses": {"Worker": {"succeeded": 1}}},
        })),
        Just(json!({"kind": "Job"})),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    prop_oneof![2 => run_object(), 1 => random_json()]
}
