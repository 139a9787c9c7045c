#!/usr/bin/env python3
"""The shipped Kubernetes manifests, made runnable by `podman kube play`
on one machine for tests/deploy/test_image.sh.

  kube_manifest.py REPO OUT NAME TAG MX-ADDR DNS-PORT RCPT SUBJECT CA-FILE EMPTYDIR

Keeps everything the manifests say (the init container's arguments and
security context, the mxtls container's, the volumes, the ConfigMap's
proxy settings) and changes only what a test needs:
  - images: localhost/mxtls:TAG and localhost/mxtls-redirect:TAG; the MTA
    placeholder becomes the mxtls image running files/mta-send.sh as UID
    1000 (any UID but mxtls's, which the redirect leaves alone);
  - mxtls.ini: hostname mxtls.test, the test DNS server, private MX
    addresses allowed, the test PKI's root as ca_bundle (a ConfigMap key);
  - the emptyDir becomes the host directory EMPTYDIR, which the test makes
    as the kubelet makes an emptyDir (root's, mode 0777): podman would
    give its own emptyDir to the container's user, and so hide a state_dir
    that mxtls cannot own in Kubernetes;
  - no `ports`: podman 4.3 binds every containerPort on the host (the
    MTA's 25 would collide with the test MX), and the probes name the
    admin port by number instead;
  - the names of the Deployment and the ConfigMap, and restartPolicy OnFailure: podman 4.3 gives
    the pod's restart policy to init containers too, and restarts the
    redirect forever under Always (Kubernetes never restarts a finished
    init container).
Writes one multi-document YAML file to OUT.
"""
import os
import sys

import yaml


def literal(dumper, text):
    # Multi-line strings (the config, the script) as readable | blocks.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


yaml.SafeDumper.add_representer(str, literal)


def main(repo, out, name, tag, mx, dns_port, rcpt, subject, ca_file,
         emptydir):
    kdir = os.path.join(repo, "deploy", "kubernetes")
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    docs = []
    for r in kust["resources"]:
        with open(os.path.join(kdir, r)) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    dep = next(d for d in docs if d["kind"] == "Deployment")

    ini = cm["data"]["mxtls.ini"]
    lines = []
    for line in ini.splitlines():
        if line.startswith("ca_bundle ="):
            line = "ca_bundle = /etc/mxtls/test-root-ca.pem"
        lines.append(line)
        if line == "[proxy]":
            lines.append("hostname = mxtls.test")
    lines += ["", "[dns]", "servers = %s:%s" % (mx, dns_port),
              "allow_private_mx = yes", ""]
    cm["data"]["mxtls.ini"] = "\n".join(lines)
    with open(ca_file) as f:
        cm["data"]["test-root-ca.pem"] = f.read()
    with open(os.path.join(repo, "tests", "deploy", "files",
                           "mta-send.sh")) as f:
        cm["data"]["mta-send.sh"] = f.read()

    dep["metadata"]["name"] = name
    pod = dep["spec"]["template"]["spec"]
    # podman keeps a ConfigMap as a volume of its name: one of the test's
    # own, which the test removes.
    cm_name = cm["metadata"]["name"]
    cm["metadata"]["name"] = name + "-config"
    for v in pod.get("volumes", []):
        if v.get("configMap", {}).get("name") == cm_name:
            v["configMap"]["name"] = name + "-config"
        if "emptyDir" in v:
            del v["emptyDir"]
            v["hostPath"] = {"path": emptydir, "type": "Directory"}
    pod["restartPolicy"] = "OnFailure"
    for c in pod.get("initContainers", []) + pod["containers"]:
        img = c["image"].rsplit(":", 1)[0]
        if img.endswith("/mxtls-redirect"):
            c["image"] = "localhost/mxtls-redirect:" + tag
        elif img.endswith("/mxtls"):
            c["image"] = "localhost/mxtls:" + tag
    for c in pod["containers"]:
        named = {p.get("name"): p["containerPort"]
                 for p in c.pop("ports", [])}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            hg = c.get(probe, {}).get("httpGet")
            if hg and hg.get("port") in named:
                hg["port"] = named[hg["port"]]
    mta = next(c for c in pod["containers"] if c["name"] == "mta")
    mta["image"] = "localhost/mxtls:" + tag
    mta["command"] = ["bash", "/etc/mta/mta-send.sh", mx, rcpt, subject]
    mta["securityContext"] = {"runAsUser": 1000, "runAsGroup": 1000,
                              "readOnlyRootFilesystem": True,
                              "capabilities": {"drop": ["ALL"]}}
    mta.setdefault("volumeMounts", []).append(
        {"name": "mxtls-config", "mountPath": "/etc/mta", "readOnly": True})

    with open(out, "w") as f:
        yaml.safe_dump_all([cm, dep], f, sort_keys=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
