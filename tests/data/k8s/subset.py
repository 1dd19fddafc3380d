#!/usr/bin/env python3
"""Cut the Kubernetes OpenAPI v2 spec down to the definitions Sextant's tests validate against.

Source: kubernetes-sigs/reference-docs, gen-apidocs/config/v1_35/swagger.json (a per-release copy of
kubernetes/kubernetes api/openapi-spec/swagger.json for v1.35), sha256
9898530bdae0292415e39d49b5991a2275b03424958c06b3af7f5fe3bacc423a.

The full file is 3.8 MB and CI has only this repository, so the tests read the closure of `$ref`s from
the root kinds below, unchanged, written next to this script as swagger-v1.35-subset.json.

Regenerate (python3, standard library only):

    python3 tests/data/k8s/subset.py path/to/swagger-v1.35.json

To validate another kind, add its definition name to ROOTS and regenerate.
"""

import json
import sys
from pathlib import Path

ROOTS = [
    "io.k8s.api.core.v1.Namespace",
    "io.k8s.api.core.v1.ServiceAccount",
    "io.k8s.api.rbac.v1.ClusterRole",
    "io.k8s.api.rbac.v1.ClusterRoleBinding",
    "io.k8s.api.rbac.v1.Role",
    "io.k8s.api.rbac.v1.RoleBinding",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Secret",
    "io.k8s.api.batch.v1.Job",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    "io.k8s.api.core.v1.Event",
    "io.k8s.api.events.v1.Event",
]

REF_PREFIX = "#/definitions/"
OUTPUT = Path(__file__).with_name("swagger-v1.35-subset.json")


def references(node):
    """Yield every definition name that `node` points at through `$ref`, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(REF_PREFIX):
                    raise SystemExit(f"unexpected $ref form: {value}")
                yield value[len(REF_PREFIX):]
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def closure(definitions, roots):
    """The names of `roots` and of everything they reach."""
    seen = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        if name not in definitions:
            raise SystemExit(f"definition not found: {name}")
        seen.add(name)
        pending.extend(references(definitions[name]))
    return seen


def main():
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: {sys.argv[0]} path/to/swagger-v1.35.json")
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    definitions = spec["definitions"]
    names = closure(definitions, ROOTS)
    subset = {
        "swagger": spec["swagger"],
        "info": {
            "title": spec["info"]["title"],
            "version": spec["info"]["version"],
            "description": "Subset of the Kubernetes v1.35 OpenAPI v2 spec made by subset.py beside this file; "
            "definitions are copied unchanged.",
        },
        "definitions": {name: definitions[name] for name in sorted(names)},
    }
    OUTPUT.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(names)} of {len(definitions)} definitions written to {OUTPUT}")


if __name__ == "__main__":
    main()
