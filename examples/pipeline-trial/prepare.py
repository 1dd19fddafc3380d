"""Step 1 of the pipeline trial: writes a small regression data set (y = 3x + 2 plus fixed noise).

It also prints the loss of always predicting the mean, as a baseline. That line looks like a
metric, but metrics come from the `train` step only (the pipeline's last step), so it is not
collected.
"""

import argparse
import math

parser = argparse.ArgumentParser()
parser.add_argument("--rows", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

rows = []
for index in range(args.rows):
    x = index / max(1, args.rows - 1)
    noise = 0.05 * math.sin(12.9898 * index)
    rows.append((x, 3.0 * x + 2.0 + noise))

with open(args.out, "w", encoding="utf-8") as out:
    out.write("x,y\n")
    for x, y in rows:
        out.write(f"{x},{y}\n")

mean = sum(y for _, y in rows) / len(rows)
baseline = sum((y - mean) ** 2 for _, y in rows) / len(rows)
print(f"prepared {len(rows)} rows; baseline loss={baseline:.6f}")
