//! Interop with a client nobody here wrote: Katib's generated Python stubs from the PyPI
//! package `kubeflow-katib`, driving `sextant serve` over loopback.

use std::path::Path;
use std::process::Command;

use crate::support::{Server, katib_python};

#[test]
fn katib_python_stubs_get_valid_suggestions_from_every_model_free_algorithm() {
    let python = katib_python().expect("virtualenv with kubeflow-katib");
    let server = Server::start(&[]).expect("server starts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/katib_suggestion.py");
    let output = Command::new(python)
        .arg(script)
        .arg(server.address.to_string())
        .output()
        .expect("run the interop script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for line in ["random: ok", "grid: ok", "sobol: ok", "validation: ok"] {
        assert!(stdout.contains(line), "missing {line:?} in\n{stdout}");
    }
}

#[test]
fn katib_sdk_report_metrics_lands_in_the_observation_log() {
    let python = katib_python().expect("virtualenv with kubeflow-katib");
    let server = Server::start(&[]).expect("server starts");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/katib_report_metrics.py");
    let output = Command::new(python)
        .arg(script)
        .arg(server.address.to_string())
        .env("KATIB_TRIAL_NAME", "interop-trial")
        .output()
        .expect("run the interop script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("report_metrics: ok (6 points)"),
        "interop script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

/// Runs one check of `tests/interop/katib_compat.py` against a fresh `sextant serve` and
/// returns what it printed.
fn katib_compat(check: &str, extra: &[&str]) -> String {
    let python = katib_python().expect("virtualenv with kubeflow-katib");
    let server = Server::start(&[]).expect("server starts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/katib_compat.py");
    let output = Command::new(python)
        .arg(script)
        .arg(check)
        .arg(server.address.to_string())
        .args(extra)
        .output()
        .expect("run the interop script");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("{check}: ok")),
        "{check} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    println!("{stdout}");
    stdout
}

/// Issue 11, item 1, and the two-bracket walk: Katib's controller sends no labels, lists trials
/// by name, merges the returned settings and asks for `parallelTrialCount` minus the running
/// trials; budgets are 9 at 1, 3 at 3, 1 at 9, then 5 at 3 and 1 at 9, each promoted trial
/// among the best of its rung.
#[test]
fn katib_controller_walks_hyperband_through_two_brackets_without_labels() {
    let stdout = katib_compat("hyperband", &[]);
    assert!(
        stdout.contains("budgets [1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 9, 3, 3, 3, 3, 3, 9]"),
        "{stdout}"
    );
}

/// Item 2: Katib's validation tests send settings and no parameters.
#[test]
fn katib_validation_requests_without_parameters_check_the_settings_alone() {
    katib_compat("validate-without-parameters", &[]);
}

/// Item 3: NAS requests (a `nas_config`, no parameters) are refused naming the algorithm.
#[test]
fn katib_nas_requests_are_refused_naming_the_algorithm() {
    katib_compat("nas", &[]);
}

/// Item 4: cmaes takes categorical parameters and any `sigma >= 0`, as Katib's does.
#[test]
fn katib_cmaes_requests_with_categorical_parameters_and_wide_sigma_are_answered() {
    katib_compat("cmaes", &[]);
}

/// Item 5: trials without a result that do not fit are skipped; succeeded ones must fit.
#[test]
fn katib_histories_with_partial_unfinished_trials_are_answered() {
    katib_compat("history", &[]);
}

/// Item 6: GetEarlyStoppingRules with an experiment and no spec answers with the defaults.
#[test]
fn katib_early_stopping_requests_without_a_spec_get_the_defaults() {
    katib_compat("early-stopping", &[]);
}

/// Item 7: every service of the README's table of `sextant serve` (and every name its health
/// row lists) answers SERVING, and the table lists the EarlyStopping service.
#[test]
fn readme_lists_every_service_sextant_serve_reports_serving() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let table = readme
        .split("One gRPC port serves:")
        .nth(1)
        .and_then(|rest| {
            rest.split("\n\n")
                .find(|block| block.contains("| service |"))
        })
        .expect("the services table of `sextant serve`");
    let mut names: Vec<String> = Vec::new();
    for row in table.lines().filter(|row| row.starts_with("| `")) {
        let mut cells = row.split('|').skip(1);
        let service = cells.next().unwrap_or_default().trim().trim_matches('`');
        names.push(service.to_string());
        if service == "grpc.health.v1.Health" {
            let notes = cells.next().unwrap_or_default();
            names.extend(notes.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    names.sort();
    names.dedup();
    for expected in [
        "api.v1.beta1.Suggestion",
        "api.v1.beta1.EarlyStopping",
        "api.v1.beta1.DBManager",
        "manager.v1beta1.Suggestion",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing from {names:?}"
        );
    }
    let arguments: Vec<&str> = names
        .iter()
        .map(|name| if name == "\"\"" { "" } else { name.as_str() })
        .collect();
    katib_compat("health", &arguments);
}
