"""A stand-in for a training run: prints per-epoch metrics, as a real training loop would.

The accuracy curve rises towards a ceiling that depends on the learning rate (best near 0.01,
on a log scale), so bad learning rates show early and median stopping can end them.
Deterministic: the same --lr always prints the same curve.
"""

import argparse
import math
import time

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()

distance = math.log10(args.lr) + 2.0
ceiling = max(0.05, 0.95 - 0.3 * distance * distance)
for epoch in range(1, args.epochs + 1):
    accuracy = ceiling * (1.0 - math.exp(-0.5 * epoch))
    loss = 1.0 - accuracy
    print(f"epoch={epoch} accuracy={accuracy:.6f} loss={loss:.6f}", flush=True)
    time.sleep(0.05)
