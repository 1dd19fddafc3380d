"""Step 2 of the pipeline trial: fits y = w x + b to the prepared data by gradient descent and
prints the mean squared error after every epoch (`epoch=N loss=V`)."""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True)
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=20)
args = parser.parse_args()

with open(args.data, encoding="utf-8") as data:
    next(data)
    points = [tuple(float(field) for field in line.split(",")) for line in data if line.strip()]

w, b = 0.0, 0.0
for epoch in range(1, args.epochs + 1):
    grad_w = sum(2 * (w * x + b - y) * x for x, y in points) / len(points)
    grad_b = sum(2 * (w * x + b - y) for x, y in points) / len(points)
    w -= args.lr * grad_w
    b -= args.lr * grad_b
    loss = sum((w * x + b - y) ** 2 for x, y in points) / len(points)
    print(f"epoch={epoch} loss={loss:.6f}", flush=True)
