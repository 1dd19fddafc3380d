"""What Katib's controller, its unit tests and its SDK send, sent to `sextant serve` through
Katib's own generated stubs (PyPI `kubeflow-katib`).

Usage: katib_compat.py CHECK HOST:PORT [ARG...]

Each CHECK builds its requests as Katib builds them: `hyperband` as Katib's controller does
(`suggestionclient.go`: every trial of the experiment in the order the API server lists them,
no `Trial.spec.labels`, the settings of the previous reply merged into the experiment's, the
number of trials asked for by `experiment_controller.go`), the others as Katib's unit tests in
`test/unit/v1beta1/suggestion` and `test/unit/v1beta1/earlystopping` do. A check prints
"CHECK: ok ..." with what it saw, and exits non-zero on the first failed expectation.
"""

import datetime
import random
import string
import sys

import grpc
from kubeflow.katib import katib_api_pb2 as api
from kubeflow.katib import katib_api_pb2_grpc as api_grpc


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def rejected(call, request, *needles):
    """Calls and expects INVALID_ARGUMENT whose details contain every needle."""
    try:
        call(request)
    except grpc.RpcError as error:
        check(error.code() == grpc.StatusCode.INVALID_ARGUMENT,
              f"code {error.code()} ({error.details()}) for {needles}")
        for needle in needles:
            check(needle in error.details(), f"{needle!r} not in {error.details()!r}")
        return error.details()
    check(False, f"accepted a request that should be refused ({needles})")


def settings(pairs):
    return [api.AlgorithmSetting(name=name, value=value) for name, value in pairs]


# === hyperband: Katib's controller, step by step ===

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # suggestionclient.go's timeFormat: whole seconds.
BASE_TIME = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def hyperband_parameters():
    return [
        api.ParameterSpec(name="lr", parameter_type=api.DOUBLE,
                          feasible_space=api.FeasibleSpace(min="0.01", max="0.05")),
        api.ParameterSpec(name="optimizer", parameter_type=api.CATEGORICAL,
                          feasible_space=api.FeasibleSpace(list=["sgd", "adam"])),
        api.ParameterSpec(name="epochs", parameter_type=api.INT,
                          feasible_space=api.FeasibleSpace(min="1", max="9")),
    ]


def hyperband_loss(values):
    """The node's training: lower is better, better with more epochs."""
    lr = float(values["lr"])
    penalty = 0.1 if values["optimizer"] == "sgd" else 0.0
    return abs(lr - 0.03) * 100 + penalty + 1.0 / int(values["epochs"])


def merge_settings(into, new):
    """algorithm_settings.go: a setting of the same name is overwritten, a new one appended."""
    merged = list(into)
    for setting in new:
        for index, existing in enumerate(merged):
            if existing.name == setting.name:
                merged[index] = api.AlgorithmSetting(name=setting.name, value=setting.value)
                break
        else:
            merged.append(api.AlgorithmSetting(name=setting.name, value=setting.value))
    return merged


def hyperband(stub):
    parallel, max_trials = 3, 19  # two brackets of r_l = 9, eta = 3: 9 + 3 + 1, then 5 + 1
    spec_settings = settings([("resource_name", "epochs"), ("eta", "3"), ("r_l", "9"),
                              ("random_state", "7")])
    status_settings = []  # Suggestion.status.algorithmSettings
    trials = []  # in creation order
    rng = random.Random(3)
    unavailable = 0
    for step in range(400):
        active = [t for t in trials if t["condition"] in (api.TrialStatus.CREATED,
                                                         api.TrialStatus.RUNNING)]
        completed = len(trials) - len(active)
        if completed == max_trials:
            break
        # experiment_controller.go: requiredActiveCount and addCount.
        add = min(parallel, max_trials - completed) - len(active)
        if add > 0:
            experiment = api.Experiment(name="hyperband", spec=api.ExperimentSpec(
                algorithm=api.AlgorithmSpec(algorithm_name="hyperband",
                                            algorithm_settings=merge_settings(spec_settings,
                                                                              status_settings)),
                objective=api.ObjectiveSpec(type=api.MINIMIZE, objective_metric_name="loss"),
                parameter_specs=api.ExperimentSpec.ParameterSpecs(
                    parameters=hyperband_parameters()),
                parallel_trial_count=parallel,
                max_trial_count=max_trials,
            ))
            # The API server lists trials by name, and names end in 8 random characters.
            listed = sorted(trials, key=lambda t: t["name"])
            request = api.GetSuggestionsRequest(
                experiment=experiment,
                trials=[convert_trial(t) for t in listed],
                current_request_number=add,
                total_request_number=len(trials) + add,
            )
            try:
                reply = stub.GetSuggestions(request)
            except grpc.RpcError as error:
                check(error.code() == grpc.StatusCode.UNAVAILABLE,
                      f"step {step}: {error.code()} {error.details()}")
                unavailable += 1
                reply = None
            if reply is not None:
                check(len(reply.parameter_assignments) == add,
                      f"step {step}: {len(reply.parameter_assignments)} assignments for {add}")
                status_settings = merge_settings(status_settings, reply.algorithm.algorithm_settings)
                for suggestion in reply.parameter_assignments:
                    trials.append({
                        "name": "hyperband-" + "".join(rng.choice(string.ascii_lowercase)
                                                       for _ in range(8)),
                        "values": {a.name: a.value for a in suggestion.assignments},
                        # Katib writes these labels on the Trial's metadata; they never return.
                        "metadata_labels": dict(suggestion.labels),
                        "condition": api.TrialStatus.RUNNING,
                        # Two steps share a second: start times tie, as they do in Katib.
                        "start_time": (BASE_TIME + datetime.timedelta(seconds=step // 2))
                        .strftime(TIME_FORMAT),
                        "loss": None,
                    })
        # The node: the oldest running trial ends. The second trial fails without metrics.
        running = [t for t in trials if t["condition"] == api.TrialStatus.RUNNING]
        if running:
            oldest = running[0]
            if oldest is trials[1]:
                oldest["condition"] = api.TrialStatus.FAILED
            else:
                oldest["condition"] = api.TrialStatus.SUCCEEDED
                oldest["loss"] = hyperband_loss(oldest["values"])
    check(len(trials) == max_trials, f"{len(trials)} trials created, {max_trials} expected")
    check(all(t["condition"] != api.TrialStatus.RUNNING for t in trials), "trials left running")

    epochs = [int(t["values"]["epochs"]) for t in trials]
    expected = [1] * 9 + [3] * 3 + [9] + [3] * 5 + [9]
    check(epochs == expected, f"budgets in creation order {epochs}, expected {expected}")

    def configuration(trial):
        return (trial["values"]["lr"], trial["values"]["optimizer"])

    def best(rung, count):
        finished = [t for t in rung if t["loss"] is not None]
        return {configuration(t) for t in sorted(finished, key=lambda t: t["loss"])[:count]}

    rungs = {"bracket 2 rung 0": trials[0:9], "bracket 2 rung 1": trials[9:12],
             "bracket 2 rung 2": trials[12:13], "bracket 1 rung 0": trials[13:18],
             "bracket 1 rung 1": trials[18:19]}
    for promoted, source, count in (("bracket 2 rung 1", "bracket 2 rung 0", 3),
                                    ("bracket 2 rung 2", "bracket 2 rung 1", 1),
                                    ("bracket 1 rung 1", "bracket 1 rung 0", 1)):
        configurations = {configuration(t) for t in rungs[promoted]}
        check(configurations == best(rungs[source], count),
              f"{promoted} {sorted(configurations)} is not the best {count} of {source}")
    check(configuration(trials[1]) not in {configuration(t) for t in trials[9:12]},
          "the failed trial was promoted")
    state = {s.name: s.value for s in status_settings}
    check(state.get("current_s") == "0" and state.get("current_i") == "0",
          f"state after two brackets: {state}")
    check(all(len(t["metadata_labels"]) == 2 for t in trials), "suggestions carry their labels")
    print(f"hyperband: ok ({len(trials)} trials, budgets {epochs}, "
          f"{unavailable} requests answered UNAVAILABLE while a rung ran)")


def convert_trial(trial):
    """suggestionclient.go ConvertTrials: no labels, start time, latest condition, metrics."""
    metrics = [] if trial["loss"] is None else [api.Metric(name="loss", value=str(trial["loss"]))]
    return api.Trial(
        name=trial["name"],
        spec=api.TrialSpec(
            objective=api.ObjectiveSpec(type=api.MINIMIZE, objective_metric_name="loss"),
            parameter_assignments=api.TrialSpec.ParameterAssignments(assignments=[
                api.ParameterAssignment(name=name, value=value)
                for name, value in trial["values"].items()
            ]),
        ),
        status=api.TrialStatus(
            start_time=trial["start_time"],
            condition=trial["condition"],
            observation=api.Observation(metrics=metrics),
        ),
    )


# === the unit tests' requests ===

def int_parameter(name, low, high):
    return api.ParameterSpec(name=name, parameter_type=api.INT,
                             feasible_space=api.FeasibleSpace(max=high, min=low, list=[]))


def validate_request(algorithm, pairs, max_trial_count, parameters):
    """test_optuna_service.py test_validate_algorithm_settings, through utils.call_validate."""
    return api.ValidateAlgorithmSettingsRequest(experiment=api.Experiment(
        name="test",
        spec=api.ExperimentSpec(
            max_trial_count=max_trial_count,
            algorithm=api.AlgorithmSpec(algorithm_name=algorithm, algorithm_settings=settings(pairs)),
            parameter_specs=api.ExperimentSpec.ParameterSpecs(parameters=parameters),
        ),
    ))


def validate_without_parameters(stub):
    accepted = [
        ("tpe", [("n_startup_trials", "5"), ("n_ei_candidates", "24"), ("random_state", "1")]),
        ("multivariate-tpe", [("n_startup_trials", "5"), ("n_ei_candidates", "24"),
                              ("random_state", "1")]),
        ("random", [("random_state", "10")]),
        ("sobol", [("random_state", "10")]),
        ("bayesianoptimization", [("random_state", "10")]),
    ]
    for algorithm, pairs in accepted:
        stub.ValidateAlgorithmSettings(validate_request(algorithm, pairs, 100, []))
    refused = [
        ("tpe", [("invalid", "5")], "invalid"),
        ("tpe", [("n_startup_trials", "-1")], "n_startup_trials"),
        ("tpe", [("random_state", "-1")], "random_state"),
        ("random", [("invalid", "invalid")], "invalid"),
        ("grid", [("random_state", "-1")], "random_state"),
        ("hyperband", [("r_l", "9"), ("resource_name", "epochs")], "resource_name"),
        ("cmaes", [("sigma", "0.2")], "two int or double"),
    ]
    for algorithm, pairs, needle in refused:
        rejected(stub.ValidateAlgorithmSettings, validate_request(algorithm, pairs, 100, []),
                 needle)
    # With parameters, they are still checked.
    stub.ValidateAlgorithmSettings(validate_request(
        "cmaes", [("restart_strategy", "ipop"), ("sigma", "0.1"), ("random_state", "10")], 20,
        [int_parameter("param-1", "1", "5"), int_parameter("param-2", "9", "10")]))
    rejected(stub.ValidateAlgorithmSettings,
             validate_request("cmaes", [("sigma", "0.2")], 5, [int_parameter("param-1", "1", "5")]),
             "two int or double")
    rejected(stub.ValidateAlgorithmSettings,
             validate_request("random", [], 5, [int_parameter("param-1", "5", "1")]),
             "parameters[0]", "param-1")
    print(f"validate-without-parameters: ok ({len(accepted)} accepted, {len(refused) + 2} refused)")


def nas_experiment(algorithm):
    """test_darts_service.py / test_enas_service.py: a nas_config and no parameters."""
    return api.Experiment(name=f"{algorithm}-experiment", spec=api.ExperimentSpec(
        algorithm=api.AlgorithmSpec(algorithm_name=algorithm,
                                    algorithm_settings=settings([("num_epoch", "10")])),
        objective=api.ObjectiveSpec(type=api.MAXIMIZE, objective_metric_name="Best-Genotype"),
        parallel_trial_count=1,
        max_trial_count=1,
        nas_config=api.NasConfig(
            graph_config=api.GraphConfig(num_layers=3),
            operations=api.NasConfig.Operations(operation=[api.Operation(
                operation_type="separable_convolution",
                parameter_specs=api.Operation.ParameterSpecs(parameters=[api.ParameterSpec(
                    name="filter_size", parameter_type=api.CATEGORICAL,
                    feasible_space=api.FeasibleSpace(list=["3", "5"]))]),
            )]),
        ),
    ))


def nas(stub):
    messages = []
    for algorithm in ("enas", "darts"):
        experiment = nas_experiment(algorithm)
        messages.append(rejected(
            stub.GetSuggestions,
            api.GetSuggestionsRequest(experiment=experiment, current_request_number=1),
            f"algorithm {algorithm} is not supported", "NAS"))
        rejected(stub.ValidateAlgorithmSettings,
                 api.ValidateAlgorithmSettingsRequest(experiment=experiment),
                 f"algorithm {algorithm} is not supported", "NAS")
        # Whatever else the request holds: with parameters too, the algorithm is named.
        experiment.spec.parameter_specs.parameters.append(int_parameter("x", "1", "5"))
        rejected(stub.GetSuggestions,
                 api.GetSuggestionsRequest(experiment=experiment, current_request_number=1),
                 f"algorithm {algorithm} is not supported", "NAS")
    # pbt is served: Katib's simple-pbt settings validate.
    pbt = validate_request("pbt", [("suggestion_trial_dir", "/var/log/katib/checkpoints/"),
                                   ("n_population", "40"), ("truncation_threshold", "0.2")],
                           20, [])
    stub.ValidateAlgorithmSettings(pbt)
    pbt_answer = "validated"
    print(f"nas: ok ({messages[0]!r}; pbt: {pbt_answer!r})")


def cmaes(stub):
    # test_optuna_service.py test_get_suggestion, cmaes row: sigma 2 over a space with
    # categorical parameters, twice (the second time with the first reply as history).
    parameters = [
        api.ParameterSpec(name="param-1", parameter_type=api.INT,
                          feasible_space=api.FeasibleSpace(max="5", min="1", list=[])),
        api.ParameterSpec(name="param-2", parameter_type=api.CATEGORICAL,
                          feasible_space=api.FeasibleSpace(list=["cat1", "cat2", "cat3"])),
        api.ParameterSpec(name="param-3", parameter_type=api.DISCRETE,
                          feasible_space=api.FeasibleSpace(list=["3", "2", "6"])),
        api.ParameterSpec(name="param-4", parameter_type=api.DOUBLE,
                          feasible_space=api.FeasibleSpace(max="5", min="1", step="1", list=[])),
        api.ParameterSpec(name="param-11", parameter_type=api.DOUBLE,
                          feasible_space=api.FeasibleSpace(max="5", min="1",
                                                           distribution=api.UNIFORM)),
        api.ParameterSpec(name="param-12", parameter_type=api.DOUBLE,
                          feasible_space=api.FeasibleSpace(max="5", min="1",
                                                           distribution=api.LOG_UNIFORM)),
    ]
    seen_categories = set()
    for sigma in ("2", "0", "0.5"):
        experiment = api.Experiment(name="test", spec=api.ExperimentSpec(
            algorithm=api.AlgorithmSpec(algorithm_name="cmaes", algorithm_settings=settings(
                [("restart_strategy", "ipop"), ("sigma", sigma), ("random_state", "71")])),
            objective=api.ObjectiveSpec(type=api.MAXIMIZE, goal=0.9),
            parameter_specs=api.ExperimentSpec.ParameterSpecs(parameters=parameters),
        ))
        stub.ValidateAlgorithmSettings(api.ValidateAlgorithmSettingsRequest(experiment=experiment))
        history = []
        for round_number in range(4):
            reply = stub.GetSuggestions(api.GetSuggestionsRequest(
                experiment=experiment, trials=history, current_request_number=2))
            check(len(reply.parameter_assignments) == 2,
                  f"sigma {sigma}: {len(reply.parameter_assignments)} assignments for 2")
            for index, suggestion in enumerate(reply.parameter_assignments):
                values = {a.name: a.value for a in suggestion.assignments}
                check(values["param-2"] in ("cat1", "cat2", "cat3"), f"param-2 {values}")
                check(1 <= int(values["param-1"]) <= 5, f"param-1 {values}")
                check(1 <= float(values["param-12"]) <= 5, f"param-12 {values}")
                seen_categories.add(values["param-2"])
                history.append(api.Trial(
                    name=f"test-{sigma}-{round_number}-{index}",
                    spec=api.TrialSpec(
                        objective=api.ObjectiveSpec(type=api.MAXIMIZE,
                                                    objective_metric_name="metric-2", goal=0.9),
                        parameter_assignments=api.TrialSpec.ParameterAssignments(
                            assignments=suggestion.assignments)),
                    status=api.TrialStatus(
                        condition=api.TrialStatus.SUCCEEDED,
                        observation=api.Observation(metrics=[
                            api.Metric(name="metric-1", value="435"),
                            api.Metric(name="metric-2", value=str(5643 - round_number))]))))
    # Katib's validation: sigma must be >= 0.
    rejected(stub.ValidateAlgorithmSettings,
             validate_request("cmaes", [("restart_strategy", "None"), ("sigma", "-10")], 55,
                              [int_parameter("param-1", "1", "5"),
                               int_parameter("param-2", "9", "10")]),
             "sigma")
    check(len(seen_categories) >= 2, f"categorical values drawn: {seen_categories}")
    print(f"cmaes: ok (sigma 2, 0 and 0.5 with a categorical parameter; categories drawn "
          f"{sorted(seen_categories)})")


def history(stub):
    # test_hyperopt_service.py test_get_suggestion: the trials carry param-1..4, the experiment
    # has five parameters, and the trials have no condition (CREATED).
    parameters = [
        api.ParameterSpec(name="param-1", parameter_type=api.INT,
                          feasible_space=api.FeasibleSpace(max="5", min="1", list=[])),
        api.ParameterSpec(name="param-2", parameter_type=api.CATEGORICAL,
                          feasible_space=api.FeasibleSpace(list=["cat1", "cat2", "cat3"])),
        api.ParameterSpec(name="param-3", parameter_type=api.DISCRETE,
                          feasible_space=api.FeasibleSpace(list=["3", "2", "6"])),
        api.ParameterSpec(name="param-4", parameter_type=api.DOUBLE,
                          feasible_space=api.FeasibleSpace(max="5", min="1", list=[])),
        api.ParameterSpec(name="param-5", parameter_type=api.DOUBLE,
                          feasible_space=api.FeasibleSpace(max="5", min="1", list=[], step="0.5",
                                                           distribution=api.LOG_UNIFORM)),
    ]

    def trial(name, values, condition=None, metrics=()):
        status = api.TrialStatus(observation=api.Observation(
            metrics=[api.Metric(name=n, value=v) for n, v in metrics]))
        if condition is not None:
            status.condition = condition
        return api.Trial(name=name, spec=api.TrialSpec(
            objective=api.ObjectiveSpec(type=api.MAXIMIZE, objective_metric_name="metric-2",
                                        goal=0.9),
            parameter_assignments=api.TrialSpec.ParameterAssignments(assignments=[
                api.ParameterAssignment(name=n, value=v) for n, v in values])), status=status)

    partial = [("param-1", "2"), ("param-2", "cat1"), ("param-3", "2"), ("param-4", "3.44")]
    trials = [
        trial("test-asfjh", partial, metrics=[("metric=1", "435"), ("metric=2", "5643")]),
        trial("test-234hs", [("param-1", "3"), ("param-2", "cat2"), ("param-3", "6"),
                             ("param-4", "4.44")],
              metrics=[("metric=1", "123"), ("metric=2", "3028")]),
        trial("test-failed", partial[:2], condition=api.TrialStatus.FAILED),
        trial("test-running", partial + [("param-5", "1.5")], condition=api.TrialStatus.RUNNING),
        trial("test-done", partial + [("param-5", "2")], condition=api.TrialStatus.SUCCEEDED,
              metrics=[("metric-2", "0.5")]),
    ]
    counts = {}
    for algorithm in ("tpe", "random", "bayesianoptimization", "multivariate-tpe"):
        experiment = api.Experiment(name="test", spec=api.ExperimentSpec(
            algorithm=api.AlgorithmSpec(algorithm_name=algorithm),
            objective=api.ObjectiveSpec(type=api.MAXIMIZE, goal=0.9,
                                        objective_metric_name="metric-2"),
            parameter_specs=api.ExperimentSpec.ParameterSpecs(parameters=parameters)))
        reply = stub.GetSuggestions(api.GetSuggestionsRequest(
            experiment=experiment, trials=trials, current_request_number=2))
        counts[algorithm] = len(reply.parameter_assignments)
        check(counts[algorithm] == 2, f"{algorithm}: {counts[algorithm]} assignments for 2")
        # A succeeded trial that does not fit is still an error naming it.
        broken = list(trials) + [trial("test-broken", partial, condition=api.TrialStatus.SUCCEEDED,
                                       metrics=[("metric-2", "0.7")])]
        rejected(stub.GetSuggestions, api.GetSuggestionsRequest(
            experiment=experiment, trials=broken, current_request_number=2),
                 "trials[5]", "test-broken", "param-5")
    print(f"history: ok (assignments {counts}; 3 of 5 trials skipped, a malformed succeeded "
          f"trial refused)")


def early_stopping(stub):
    # test_medianstop_service.py test_get_earlystopping_rules: an experiment with a name only.
    request = api.GetEarlyStoppingRulesRequest(
        experiment=api.Experiment(name="test"),
        trials=[api.Trial(name="test-asfjh"), api.Trial(name="test-234hs")],
        db_manager_address="katib-db-manager.kubeflow:6789",
    )
    reply = stub.GetEarlyStoppingRules(request)
    check(len(reply.early_stopping_rules) == 0, f"rules {reply.early_stopping_rules}")
    # The same with a spec that has an objective but no early_stopping: medianstop's defaults,
    # and with no succeeded trial there is no median yet.
    request.experiment.spec.objective.type = api.MINIMIZE
    request.experiment.spec.objective.objective_metric_name = "loss"
    reply = stub.GetEarlyStoppingRules(request)
    check(len(reply.early_stopping_rules) == 0, f"rules {reply.early_stopping_rules}")
    # test_validate_early_stopping_settings: settings are still checked.
    rejected(stub.ValidateEarlyStoppingSettings, api.ValidateEarlyStoppingSettingsRequest(
        early_stopping=api.EarlyStoppingSpec(algorithm_name="medianstop", algorithm_settings=[
            api.EarlyStoppingSetting(name="min_trials_required", value="0")])),
             "min_trials_required")
    print("early-stopping: ok (no spec and no early_stopping answered with no rules)")


def health(channel, names):
    """grpc.health.v1.Health/Check by hand: Katib's package ships no health stubs."""
    check_call = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=lambda name: b"\x0a" + bytes([len(name)]) + name.encode(),
        response_deserializer=lambda data: data,
    )
    for name in names:
        answer = check_call(name)
        check(answer == b"\x08\x01", f"{name!r} is not SERVING: {answer!r}")
    print(f"health: ok ({len(names)} services SERVING: {', '.join(names)})")


def main():
    name, address = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=30)
    suggestion = api_grpc.SuggestionStub(channel)
    checks = {
        "hyperband": lambda: hyperband(suggestion),
        "validate-without-parameters": lambda: validate_without_parameters(suggestion),
        "nas": lambda: nas(suggestion),
        "cmaes": lambda: cmaes(suggestion),
        "history": lambda: history(suggestion),
        "early-stopping": lambda: early_stopping(api_grpc.EarlyStoppingStub(channel)),
        "health": lambda: health(channel, sys.argv[3:]),
    }
    checks[name]()


if __name__ == "__main__":
    main()
