#!/usr/bin/env bash
# Renders deploy/base and every overlay, and validates each rendered object against the
# Kubernetes schemas offline with `kubernetes-validate` (PyPI; schemas ship in the package).
# Installs its tools into a private venv from PyPI; needs no cluster, no kubectl, no network
# beyond the package registry.
set -euo pipefail
cd "$(dirname "$0")"
KUBERNETES_VALIDATE_VERSION=1.37.0
PYYAML_VERSION=6.0.3
K8S_VERSION="${K8S_VERSION:-1.33.0}"
venv="${CARGO_TARGET_DIR:-../target}/deploy-venv"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "pyyaml==$PYYAML_VERSION"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
status=0
for dir in base overlays/*/; do
  dir="${dir%/}"
  name="${dir//\//-}"
  "$venv/bin/python" render.py "$dir" > "$out/$name.yaml"
  # One file per object, so a failure names the object.
  "$venv/bin/python" - "$out/$name.yaml" "$out/$name" <<'PY'
import os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
os.makedirs(sys.argv[2])
for d in docs:
    with open(os.path.join(sys.argv[2], f"{d['kind']}-{d['metadata']['name']}.yaml"), "w") as f:
        yaml.safe_dump(d, f)
print(f"{sys.argv[1]}: {len(docs)} objects")
PY
  if ! "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$out/$name"/*.yaml; then
    status=1
  fi
  # The renderer must agree with kustomize itself where one is at hand (not required).
  if command -v kubectl >/dev/null 2>&1 && [ "${DEPLOY_COMPARE_KUSTOMIZE:-1}" = 1 ]; then
    kubectl kustomize "$dir" > "$out/$name.kustomize.yaml"
    if ! "$venv/bin/python" - "$out/$name.yaml" "$out/$name.kustomize.yaml" <<'PY'
import sys, yaml
def objs(p):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(p)) if d}
a, b = objs(sys.argv[1]), objs(sys.argv[2])
if a != b:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print(f"render.py and kubectl kustomize differ on {k}", file=sys.stderr)
    sys.exit(1)
PY
    then
      status=1
    fi
  fi
done
[ "$status" = 0 ] && echo "deploy: every rendered manifest is valid"
exit "$status"
