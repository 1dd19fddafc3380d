#!/usr/bin/env python3
"""The PBT toy problem of Katib's simple-pbt example (after Ray Tune's pbt_example.py).

The model's accuracy (0 to 100) grows fastest when the learning rate follows a triangle wave of
the accuracy itself: the best rate rises from 0.001 to 0.01 as accuracy reaches 50 and falls
back to 0.001 at 100. No fixed rate can follow it; population-based training can, by handing
checkpoints on from generation to generation.

The trial trains `--epochs` epochs from the checkpoint in `--checkpoint` (its parent's, copied
there before it starts; nothing in generation 0), writes its own checkpoint there and prints
`Validation-accuracy=<accuracy / 100>`. The checkpoint is JSON: accuracy, step, and the names
of the trials that trained it (`lineage`), so tests can follow it from parent to child.
"""

import argparse
import json
import math
import os
import random

MIDPOINT = 50.0
TOLERANCE = 3.0
NOISE = 2.0


def best_lr(accuracy):
    if accuracy < MIDPOINT:
        lr = 0.01 * accuracy / MIDPOINT
    else:
        lr = 0.01 - 0.01 * (accuracy - MIDPOINT) / MIDPOINT
    return min(0.01, max(0.001, lr))


def train(state, lr, epochs, rng):
    for _ in range(epochs):
        best = best_lr(state["accuracy"])
        q = max(lr, best) / (min(lr, best) + 1e-16)
        if q < TOLERANCE:
            state["accuracy"] += rng.random() / q
        elif lr > best:
            state["accuracy"] -= (q - TOLERANCE) * rng.random()
        state["accuracy"] += NOISE * rng.gauss(0.0, 1.0)
        state["accuracy"] = min(100.0, max(0.0, state["accuracy"]))
        state["step"] += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    options = parser.parse_args()

    trial = os.environ.get("KATIB_TRIAL_NAME", "trial")
    path = os.path.join(options.checkpoint, "training.json")
    if os.path.exists(path):
        with open(path) as source:
            state = json.load(source)
    else:
        os.makedirs(options.checkpoint, exist_ok=True)
        state = {"accuracy": 0.0, "step": 0, "lineage": []}

    # The noise is drawn from the trial's name, so a run is reproducible.
    train(state, options.lr, options.epochs, random.Random(trial))
    state["lineage"].append(trial)
    with open(path, "w") as target:
        json.dump(state, target)

    print(f"epoch {state['step']}: lr={options.lr:.4f}")
    print(f"Validation-accuracy={state['accuracy'] / 100:.4f}")


if __name__ == "__main__":
    main()
