#!/usr/bin/env python3
"""Optuna's TPE on the quality runner's conditional test function, for comparison.

Runs the function that `cargo run --release -p sextant-algorithms --example quality --
--function conditional` measures (algorithms/src/test_functions.rs, `TestFunction::Conditional`)
with Optuna's TPESampler(multivariate=True, group=True), the group decomposition our
`multivariate-tpe` and `tpe` follow in conditional spaces, and prints the same table: the
median and interquartile range of simple regret after --trials trials over seeds 0..--seeds-1
(seed s is TPESampler(seed=s)). `--sampler independent` runs Optuna's univariate TPE and
`--sampler random` its RandomSampler instead.

    python3 -m venv ~/.cache/sextant/optuna-venv
    ~/.cache/sextant/optuna-venv/bin/pip install optuna
    ~/.cache/sextant/optuna-venv/bin/python scripts/optuna-conditional.py --trials 100 --seeds 10
"""

import argparse
import math
import statistics
import time

import optuna


def conditional(trial):
    """The same function as TestFunction::Conditional: a shared bowl in x plus the chosen
    branch's floor and bowl; the optimum 0 is in the four-parameter branch c."""
    x = trial.suggest_float("x", 0.0, 1.0)
    model = trial.suggest_categorical("model", ["a", "b", "c"])
    shared = (x - 0.4) ** 2
    if model == "a":
        a0 = trial.suggest_float("a0", 0.0, 1.0)
        return shared + 0.3 + (a0 - 0.25) ** 2
    if model == "b":
        b0 = trial.suggest_float("b0", 0.0, 1.0)
        b1 = trial.suggest_float("b1", 1e-4, 1.0, log=True)
        return shared + 0.15 + (b0 - 0.6) ** 2 + ((math.log10(b1) + 2.0) / 4.0) ** 2
    c0 = trial.suggest_float("c0", 0.0, 1.0)
    c1 = trial.suggest_float("c1", 0.0, 1.0)
    c2 = trial.suggest_float("c2", 0.0, 1.0)
    c3 = trial.suggest_int("c3", 1, 16)
    return shared + (c0 - 0.3) ** 2 + (c1 - 0.7) ** 2 + (c2 - 0.2) ** 2 + ((c3 - 11) / 15) ** 2


def sampler(kind, seed):
    if kind == "group":
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)
    if kind == "independent":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sampler", choices=["group", "independent", "random"], default="group")
    options = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    finals = []
    started = time.perf_counter()
    for seed in range(options.seeds):
        study = optuna.create_study(sampler=sampler(options.sampler, seed))
        study.optimize(conditional, n_trials=options.trials)
        finals.append(study.best_value)  # the optimum is 0, so this is the simple regret
    per_suggestion = (time.perf_counter() - started) * 1e3 / (options.seeds * options.trials)
    finals.sort()
    # The quality runner's quartiles: the sorted value at (n - 1) q rounded half away from 0.
    quartile = lambda q: finals[math.floor((len(finals) - 1) * q + 0.5)]
    label = {"group": "TPE(group=True)", "independent": "TPE", "random": "random"}[options.sampler]
    print(f"| function | optuna {label} median regret | IQR | time per suggestion |")
    print("| --- | --- | --- | --- |")
    print(
        f"| conditional | {statistics.median(finals):.3e} | {quartile(0.25):.3e} – "
        f"{quartile(0.75):.3e} | {per_suggestion:.2f} ms |"
    )
    print(f"optuna {optuna.__version__}")


if __name__ == "__main__":
    main()
