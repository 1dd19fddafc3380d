"""Drives `sextant serve` through Katib's own generated gRPC stubs (PyPI `kubeflow-katib`).

Usage: katib_suggestion.py HOST:PORT

For each model-free algorithm it asks for suggestions over a space with every parameter type
and checks counts, types, bounds, steps and list membership; then it checks that invalid
settings and unknown algorithms are rejected with INVALID_ARGUMENT. Exits non-zero on the first
failed check, printing what was wrong.
"""

import math
import sys

import grpc
from kubeflow.katib import katib_api_pb2 as api
from kubeflow.katib import katib_api_pb2_grpc as api_grpc


def parameters():
    return [
        api.ParameterSpec(
            name="lr",
            parameter_type=api.DOUBLE,
            feasible_space=api.FeasibleSpace(min="0.001", max="0.1", step="0.001"),
        ),
        api.ParameterSpec(
            name="layers",
            parameter_type=api.INT,
            feasible_space=api.FeasibleSpace(min="2", max="10", step="2"),
        ),
        api.ParameterSpec(
            name="batch",
            parameter_type=api.DISCRETE,
            feasible_space=api.FeasibleSpace(list=["16", "32", "64"]),
        ),
        api.ParameterSpec(
            name="optimizer",
            parameter_type=api.CATEGORICAL,
            feasible_space=api.FeasibleSpace(list=["sgd", "adam", "ftrl"]),
        ),
    ]


def experiment(algorithm, settings=()):
    return api.Experiment(
        name="interop",
        spec=api.ExperimentSpec(
            parameter_specs=api.ExperimentSpec.ParameterSpecs(parameters=parameters()),
            objective=api.ObjectiveSpec(type=api.MAXIMIZE, objective_metric_name="accuracy"),
            algorithm=api.AlgorithmSpec(
                algorithm_name=algorithm,
                algorithm_settings=[api.AlgorithmSetting(name=n, value=v) for n, v in settings],
            ),
            parallel_trial_count=3,
            max_trial_count=12,
        ),
    )


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def check_assignment(assignments):
    values = {a.name: a.value for a in assignments}
    check(set(values) == {"lr", "layers", "batch", "optimizer"}, f"names {sorted(values)}")
    lr = float(values["lr"])
    check(0.001 <= lr <= 0.1, f"lr {lr} out of bounds")
    steps = (lr - 0.001) / 0.001
    check(abs(steps - round(steps)) < 1e-6, f"lr {lr} off the 0.001 step")
    layers = int(values["layers"])
    check(layers in (2, 4, 6, 8, 10), f"layers {values['layers']} off the step")
    check(values["batch"] in ("16", "32", "64"), f"batch {values['batch']}")
    check(values["optimizer"] in ("sgd", "adam", "ftrl"), f"optimizer {values['optimizer']}")


def trial(name, assignments, accuracy):
    return api.Trial(
        name=name,
        spec=api.TrialSpec(
            objective=api.ObjectiveSpec(type=api.MAXIMIZE, objective_metric_name="accuracy"),
            parameter_assignments=api.TrialSpec.ParameterAssignments(assignments=assignments),
        ),
        status=api.TrialStatus(
            condition=api.TrialStatus.SUCCEEDED,
            observation=api.Observation(metrics=[api.Metric(name="accuracy", value=str(accuracy))]),
        ),
    )


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = api_grpc.SuggestionStub(channel)

    for algorithm in ("random", "grid", "sobol"):
        settings = [("random_state", "42")]
        stub.ValidateAlgorithmSettings(
            api.ValidateAlgorithmSettingsRequest(experiment=experiment(algorithm, settings))
        )
        history = []
        for round_number in range(3):
            reply = stub.GetSuggestions(
                api.GetSuggestionsRequest(
                    experiment=experiment(algorithm, settings),
                    trials=history,
                    current_request_number=4,
                    total_request_number=4 * (round_number + 1),
                )
            )
            check(len(reply.parameter_assignments) == 4,
                  f"{algorithm}: {len(reply.parameter_assignments)} assignments for 4")
            for index, suggestion in enumerate(reply.parameter_assignments):
                check_assignment(suggestion.assignments)
                history.append(trial(f"{algorithm}-{round_number}-{index}", suggestion.assignments,
                                     0.5 + 0.01 * index))
        keys = [tuple(sorted((a.name, a.value) for a in t.spec.parameter_assignments.assignments))
                for t in history]
        if algorithm == "grid":
            check(len(set(keys)) == len(keys), "grid repeated a combination")
        again = stub.GetSuggestions(
            api.GetSuggestionsRequest(experiment=experiment(algorithm, settings), trials=history,
                                      current_request_number=2))
        repeat = stub.GetSuggestions(
            api.GetSuggestionsRequest(experiment=experiment(algorithm, settings), trials=history,
                                      current_request_number=2))
        check(again == repeat, f"{algorithm}: same random_state and history gave different answers")
        print(f"{algorithm}: ok ({len(history)} trials)")

    def rejected(call, request, *needles):
        try:
            call(request)
        except grpc.RpcError as error:
            check(error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"code {error.code()} for {needles}")
            for needle in needles:
                check(needle in error.details(), f"{needle!r} not in {error.details()!r}")
            return
        check(False, f"accepted an invalid request ({needles})")

    rejected(stub.ValidateAlgorithmSettings,
             api.ValidateAlgorithmSettingsRequest(experiment=experiment("random", [("random_state", "-3")])),
             "random_state")
    rejected(stub.ValidateAlgorithmSettings,
             api.ValidateAlgorithmSettingsRequest(experiment=experiment("no-such-algorithm")),
             "no-such-algorithm", "random", "grid", "sobol")
    rejected(stub.GetSuggestions,
             api.GetSuggestionsRequest(experiment=experiment("random"), current_request_number=0),
             "current_request_number")
    print("validation: ok")


if __name__ == "__main__":
    main()
