#!/usr/bin/env python3
"""Read the CI snippets of docs/containers.md and the Kubernetes Job in
contrib/kubernetes/: parse every YAML block, check each against a minimal
schema of the fields the page relies on, and print, as JSON, the fwrun
command each job runs (with a leading sudo removed).

    tests/container/check-snippets.py REPO

Exits 1, naming the snippet, when one does not parse or does not fit."""

import json
import re
import shlex
import sys

import jsonschema
import yaml

STEP_RUN = {"type": "object", "properties": {"run": {"type": "string"}}}

GITLAB = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {
        "type": "object",
        "required": ["image", "script"],
        "properties": {
            "image": {"type": "string"},
            "script": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "artifacts": {
                "type": "object",
                "required": ["paths"],
                "properties": {"when": {"const": "always"}},
            },
        },
    },
}

ACTIONS = {
    "type": "object",
    "required": ["jobs"],
    "properties": {
        "jobs": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["runs-on", "steps"],
                "properties": {
                    "container": {
                        "type": "object",
                        "required": ["image", "options"],
                        "properties": {"options": {"type": "string", "pattern": "--privileged"}},
                    },
                    "steps": {"type": "array", "items": STEP_RUN, "minItems": 1},
                },
            },
        }
    },
}

CONTAINER = {
    "type": "object",
    "required": ["name", "image", "command", "securityContext"],
    "properties": {
        "command": {"type": "array", "items": {"type": "string"}},
        "securityContext": {
            "type": "object",
            "required": ["privileged"],
            "properties": {"privileged": {"const": True}},
        },
        "volumeMounts": {
            "type": "array",
            "items": {"type": "object", "required": ["name", "mountPath"]},
        },
    },
}

JOB = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "batch/v1"},
        "kind": {"const": "Job"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["backoffLimit", "template"],
            "properties": {
                "backoffLimit": {"const": 0},
                "template": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["restartPolicy", "containers", "volumes"],
                            "properties": {
                                "restartPolicy": {"const": "Never"},
                                "containers": {"type": "array", "items": CONTAINER, "minItems": 1, "maxItems": 1},
                                "initContainers": {"type": "array", "items": {"type": "object", "required": ["name", "image"]}},
                                "volumes": {"type": "array", "items": {"type": "object", "required": ["name"]}},
                            },
                        }
                    },
                },
            },
        },
    },
}


def die(msg):
    print("check-snippets.py: " + " ".join(str(msg).split()), file=sys.stderr)
    sys.exit(1)


def fwrun_commands(text):
    """The fwrun command lines in a shell text, sudo removed."""
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["sudo"]:
            words = words[1:]
        if words[:1] == ["fwrun"]:
            out.append(words)
    return out


def check(doc, schema, what):
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as e:
        die(f"{what}: {e.message} (at {'/'.join(map(str, e.absolute_path))})")


def main():
    repo = sys.argv[1]
    page = open(f"{repo}/docs/containers.md").read()
    blocks = re.findall(r"^```yaml\n(.*?)^```", page, re.S | re.M)
    result = {"gitlab": {}, "actions": {}, "kubernetes": []}
    for i, block in enumerate(blocks):
        try:
            doc = yaml.safe_load(block)
        except yaml.YAMLError as e:
            die(f"YAML block {i + 1} of docs/containers.md does not parse: {e}")
        if "jobs" in doc:
            check(doc, ACTIONS, "the GitHub Actions workflow")
            for name, job in doc["jobs"].items():
                cmds = [c for s in job["steps"] for c in fwrun_commands(s.get("run", ""))]
                result["actions"][name] = {"commands": cmds, "container": job.get("container")}
        else:
            check(doc, GITLAB, "the GitLab CI job")
            for name, job in doc.items():
                cmds = [c for s in job["script"] for c in fwrun_commands(s)]
                result["gitlab"][name] = {"commands": cmds}
    toml = re.findall(r"^```toml\n(.*?)^```", page, re.S | re.M)
    result["gitlab_runner_privileged"] = any(
        re.search(r"^\[runners\.docker\]\n(?:.*\n)*?\s*privileged\s*=\s*true\s*$", t, re.M) for t in toml
    )
    job = yaml.safe_load(open(f"{repo}/contrib/kubernetes/fwrun-job.yaml"))
    check(job, JOB, "contrib/kubernetes/fwrun-job.yaml")
    spec = job["spec"]["template"]["spec"]
    container = spec["containers"][0]
    result["kubernetes"] = fwrun_commands(container["command"][-1])
    result["kubernetes_container"] = {
        "command": container["command"],
        "workingDir": container.get("workingDir"),
    }
    volumes = {v["name"]: v for v in spec["volumes"]}
    for m in container.get("volumeMounts", []) + [
        m for c in spec.get("initContainers", []) for m in c.get("volumeMounts", [])
    ]:
        if m["name"] not in volumes:
            die(f"contrib/kubernetes/fwrun-job.yaml mounts volume {m['name']}, which it does not define")
    result["kubernetes_run_is_memory"] = any(
        m["mountPath"] == "/run" and volumes[m["name"]].get("emptyDir", {}).get("medium") == "Memory"
        for m in container.get("volumeMounts", [])
    )
    result["kubernetes_reports"] = "/dev/termination-log" in container["command"][-1]
    print(json.dumps(result))


main()
