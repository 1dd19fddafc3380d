"""Katib's Python SDK (PyPI `kubeflow-katib`), unchanged, against `sextant controller
--api-group kubeflow.org`: creates an Experiment from one of Katib's examples the way Katib's
own end-to-end tests do, waits for it to succeed, reads the optimal hyperparameters and the
trials back, asks for the table `kubectl get experiments.kubeflow.org` prints, and deletes the
Experiment.

Usage: katib_sdk_cluster.py EXPERIMENT_YAML NAMESPACE, with KUBECONFIG naming the cluster. The
test that runs it plays the node meanwhile. The last line printed is `RESULT <json>`.

The virtualenv pins `kubernetes<36` beside kubeflow-katib 0.19 (tests/it/support.rs): with the
newer clients PyPI resolves by default, the SDK's own deserializer cannot read back Trials (or,
from 37, any object), against Katib as against Sextant.
"""

import json
import sys

import yaml
from kubeflow.katib import ApiClient, KatibClient
from kubeflow.katib.utils.utils import FakeResponse


def metric_values(metrics):
    return {metric.name: metric.latest for metric in metrics or []}


def assignments(parameter_assignments):
    return {assignment.name: assignment.value for assignment in parameter_assignments}


def last_true_condition(conditions):
    true = [condition.type for condition in conditions or [] if condition.status == "True"]
    return true[-1] if true else None


def main():
    path, namespace = sys.argv[1], sys.argv[2]
    # As Katib's e2e test (test/e2e/v1beta1/scripts/gh-actions/run-e2e-experiment.py) reads
    # its examples: into the SDK's V1beta1Experiment model.
    with open(path) as file:
        experiment = FakeResponse(yaml.safe_load(file))
    experiment = ApiClient().deserialize(experiment, "V1beta1Experiment")
    experiment.metadata.namespace = namespace
    name = experiment.metadata.name

    katib = KatibClient(namespace=namespace)
    katib.create_experiment(experiment, namespace)
    done = katib.wait_for_experiment_condition(
        name, namespace, timeout=180, polling_interval=1
    )
    succeeded = [
        condition
        for condition in done.status.conditions
        if condition.type == "Succeeded" and condition.status == "True"
    ]
    optimal = katib.get_optimal_hyperparameters(name, namespace)
    trials = katib.list_trials(name, namespace)

    # What `kubectl get experiments.kubeflow.org` asks for: the server-side table, through the
    # SDK's own authenticated client.
    response = katib.custom_api.api_client.call_api(
        f"/apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments",
        "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=False,
    )
    table = json.loads(response.data)

    katib.delete_experiment(name, namespace)
    result = {
        "name": name,
        "succeeded_reason": succeeded[0].reason if succeeded else None,
        "trials_succeeded": done.status.trials_succeeded,
        "max_trial_count": done.spec.max_trial_count,
        "optimal": {
            "best_trial_name": optimal.best_trial_name,
            "parameters": assignments(optimal.parameter_assignments),
            "metrics": metric_values(optimal.observation.metrics),
        },
        "trials": [
            {
                "name": trial.metadata.name,
                "condition": last_true_condition(trial.status.conditions),
                "parameters": assignments(trial.spec.parameter_assignments),
                "metrics": metric_values(
                    trial.status.observation.metrics if trial.status.observation else []
                ),
            }
            for trial in trials
        ],
        "table_columns": [column["name"] for column in table["columnDefinitions"]],
        "table_rows": [row["cells"] for row in table["rows"]],
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
