"""ZDT1 (Zitzler, Deb and Thiele 2000) as a stand-in for a training run with two objectives,
both minimized, and a cost to keep under a budget: prints `f1=<v> f2=<v> cost=<v>`.

f1 = x1; g = 1 + 9 * mean(x2..xn); f2 = g * (1 - sqrt(f1 / g)). The true front is
f2 = 1 - sqrt(f1) with x2..xn = 0. The cost, x1 + x2 + x3, is an outcome constraint.
"""

import argparse
import math

parser = argparse.ArgumentParser()
for name in ("x1", "x2", "x3"):
    parser.add_argument(f"--{name}", type=float, required=True)
args = parser.parse_args()

xs = [args.x1, args.x2, args.x3]
f1 = xs[0]
g = 1 + 9 * sum(xs[1:]) / (len(xs) - 1)
f2 = g * (1 - math.sqrt(f1 / g))
print(f"f1={f1} f2={f2} cost={sum(xs)}")
