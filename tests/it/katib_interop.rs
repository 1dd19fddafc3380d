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
