"""The `train` step after tuning: "trains" with the best parameters the tune step found (here it
evaluates the Branin function at them) and writes them with the result to --out as JSON."""

import argparse
import json
import math

parser = argparse.ArgumentParser()
parser.add_argument("--x1", type=float, required=True)
parser.add_argument("--x2", type=float, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

b = 5.1 / (4 * math.pi ** 2)
c = 5 / math.pi
t = 1 / (8 * math.pi)
loss = (args.x2 - b * args.x1 ** 2 + c * args.x1 - 6) ** 2 + 10 * (1 - t) * math.cos(args.x1) + 10
with open(args.out, "w", encoding="utf-8") as out:
    json.dump({"x1": args.x1, "x2": args.x2, "loss": loss}, out)
print(f"trained with x1={args.x1} x2={args.x2}: loss={loss}")
