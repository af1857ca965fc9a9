#!/usr/bin/env python3
"""Renders a kustomization (deploy/base, deploy/overlays/*) to YAML without kustomize.

No kustomize binary comes from the package registries CI may use (PyPI, Debian, npm,
crates.io), and CI must not depend on a kubectl that happens to be installed. This renders the
small subset of kustomize these manifests use, and refuses anything else, so a kustomization it
cannot render faithfully fails instead of rendering wrong:

  resources (files and directories), namespace, labels (pairs, without selectors),
  images (name, newName, newTag, digest), replicas, patches (JSON 6902, inline, by target kind
  and optional name).

`kubectl kustomize deploy/overlays/example` renders the same objects (validate.sh compares
them when a kubectl is present, as an extra check).

usage: render.py DIR   (YAML documents on stdout)
"""
import copy
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass",
}


def fail(msg):
    sys.exit(f"render.py: {msg}")


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def render(directory):
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.exists(path):
        fail(f"{directory}: no kustomization.yaml")
    (k,) = load_docs(path)
    unknown = set(k) - SUPPORTED
    if unknown:
        fail(f"{path}: unsupported fields {sorted(unknown)}")
    objects = []
    for res in k.get("resources", []):
        full = os.path.normpath(os.path.join(directory, res))
        objects += render(full) if os.path.isdir(full) else load_docs(full)
    for patch in k.get("patches", []):
        apply_patch(objects, patch, path)
    for r in k.get("replicas", []):
        hits = [o for o in objects if o["metadata"]["name"] == r["name"] and "replicas" in o.get("spec", {})]
        if not hits:
            fail(f"{path}: replicas: no object {r['name']}")
        for o in hits:
            o["spec"]["replicas"] = r["count"]
    for image in k.get("images", []):
        for o in objects:
            set_image(o, image)
    for group in k.get("labels", []):
        if group.get("includeSelectors") or group.get("includeTemplates"):
            fail(f"{path}: labels with includeSelectors/includeTemplates are not supported")
        for o in objects:
            o["metadata"].setdefault("labels", {}).update(group["pairs"])
    if "namespace" in k:
        for o in objects:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]
    return objects


def set_image(obj, image):
    pod = obj.get("spec", {}).get("template", {}).get("spec", {})
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        name = c["image"].split("@")[0].rsplit(":", 1)[0] if "/" not in c["image"].rsplit(":", 1)[-1] else c["image"]
        if name != image["name"]:
            continue
        new = image.get("newName", name)
        if "digest" in image:
            c["image"] = f"{new}@{image['digest']}"
        else:
            tag = image.get("newTag", c["image"][len(name) + 1:] if ":" in c["image"] else "latest")
            c["image"] = f"{new}:{tag}"


def apply_patch(objects, patch, path):
    target = patch.get("target", {})
    ops = yaml.safe_load(patch["patch"])
    if not isinstance(ops, list) or set(patch) - {"target", "patch"} or set(target) - {"kind", "name"}:
        fail(f"{path}: only inline JSON 6902 patches with target kind/name are supported")
    hits = [o for o in objects
            if o["kind"] == target.get("kind", o["kind"])
            and o["metadata"]["name"] == target.get("name", o["metadata"]["name"])]
    if not hits:
        fail(f"{path}: patch target {target} matches nothing")
    for o in hits:
        for op in ops:
            json_patch(o, op, path)


def json_patch(doc, op, path):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    kind = op["op"]
    value = copy.deepcopy(op.get("value"))
    if isinstance(parent, list):
        if kind == "add":
            parent.append(value) if last == "-" else parent.insert(int(last), value)
        elif kind == "replace":
            parent[int(last)] = value
        elif kind == "remove":
            del parent[int(last)]
        else:
            fail(f"{path}: op {kind} not supported")
    else:
        if kind in ("add", "replace"):
            if kind == "replace" and last not in parent:
                fail(f"{path}: replace of missing {op['path']}")
            parent[last] = value
        elif kind == "remove":
            del parent[last]
        else:
            fail(f"{path}: op {kind} not supported")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: render.py DIR")
    yaml.safe_dump_all(render(sys.argv[1]), sys.stdout, sort_keys=False)
