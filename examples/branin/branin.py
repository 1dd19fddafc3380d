"""The Branin-Hoo function as a stand-in for a training run: prints `loss=<value>`.

Its minimum, 0.397887, is reached at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475).
"""

import argparse
import math

parser = argparse.ArgumentParser()
parser.add_argument("--x1", type=float, required=True)
parser.add_argument("--x2", type=float, required=True)
args = parser.parse_args()

b = 5.1 / (4 * math.pi ** 2)
c = 5 / math.pi
t = 1 / (8 * math.pi)
loss = (args.x2 - b * args.x1 ** 2 + c * args.x1 - 6) ** 2 + 10 * (1 - t) * math.cos(args.x1) + 10
print(f"loss={loss}")
