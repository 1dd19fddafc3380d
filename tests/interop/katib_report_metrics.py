"""Pushes metrics into `sextant serve` with Katib's own SDK and reads them back.

Usage: katib_report_metrics.py HOST:PORT   (KATIB_TRIAL_NAME must be set, as in a Katib trial)

`kubeflow.katib.report_metrics` is what training code calls with the Push collector; the read
back goes through Katib's generated DBManager stub.
"""

import os
import sys

import grpc
from kubeflow.katib import katib_api_pb2 as api
from kubeflow.katib import katib_api_pb2_grpc as api_grpc
from kubeflow.katib import report_metrics
from kubeflow.katib.utils import utils

# report_metrics reads the pod's namespace from the service-account file, which exists only
# inside a Kubernetes pod (and is used for nothing but an error message); everything it sends
# over gRPC is untouched by this.
utils.get_current_k8s_namespace = lambda: "default"


def main():
    address = sys.argv[1]
    trial = os.environ["KATIB_TRIAL_NAME"]
    for epoch in range(3):
        report_metrics({"accuracy": 0.5 + 0.1 * epoch, "loss": 1.0 / (epoch + 1)},
                       db_manager_address=address)
    stub = api_grpc.DBManagerStub(grpc.insecure_channel(address))
    reply = stub.GetObservationLog(api.GetObservationLogRequest(trial_name=trial))
    logs = [(log.metric.name, float(log.metric.value)) for log in reply.observation_log.metric_logs]
    accuracy = [value for name, value in logs if name == "accuracy"]
    loss = [value for name, value in logs if name == "loss"]
    if [round(a, 6) for a in sorted(accuracy)] != [0.5, 0.6, 0.7]:
        print("FAILED: accuracy", accuracy, file=sys.stderr)
        sys.exit(1)
    if len(loss) != 3:
        print("FAILED: loss", loss, file=sys.stderr)
        sys.exit(1)
    only_loss = stub.GetObservationLog(api.GetObservationLogRequest(trial_name=trial, metric_name="loss"))
    if {log.metric.name for log in only_loss.observation_log.metric_logs} != {"loss"}:
        print("FAILED: metric_name filter", file=sys.stderr)
        sys.exit(1)
    print(f"report_metrics: ok ({len(logs)} points)")


if __name__ == "__main__":
    main()
