#!/usr/bin/env python3
"""The YAML of deploy/: parses, and carries the settings README.md
promises.  Used by tests/deploy/test_manifests.sh.

  check_manifests.py REPO OUTDIR

Prints "ok  NAME" / "FAIL NAME: why" lines (the shell test counts them),
"# ..." notes, and writes the mxtls configs it finds to OUTDIR
(kubernetes.ini from the ConfigMap) for `mxtls -t`.
"""
import configparser
import os
import sys

import yaml

results = []


def ok(name):
    print("ok  " + name)


def fail(name, why=""):
    print("FAIL " + name + (": " + why if why else ""))


def check(name, cond, why=""):
    if cond:
        ok(name)
    else:
        fail(name, why)
    return cond


def note(text):
    print("# " + text)


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def ini_of(text):
    # mxtls's INI: ";" comments, no interpolation, keys case-sensitive.
    cp = configparser.ConfigParser(interpolation=None,
                                   inline_comment_prefixes=(" ;",),
                                   comment_prefixes=(";", "#"),
                                   strict=True)
    cp.optionxform = str
    cp.read_string(text)
    return cp


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


# ---- openapi field names, when the Kubernetes client library is here ----
def k8s_validate(obj, typename, where, errors):
    """Every key of obj must be a field of the model `typename`."""
    import kubernetes.client as kc
    if obj is None:
        return
    if typename.startswith("list["):
        inner = typename[5:-1]
        if not isinstance(obj, list):
            errors.append("%s: a list expected" % where)
            return
        for i, item in enumerate(obj):
            k8s_validate(item, inner, "%s[%d]" % (where, i), errors)
        return
    if typename.startswith("dict(") or typename in (
            "str", "int", "bool", "float", "object", "datetime", "date"):
        return
    model = getattr(kc, typename, None)
    if model is None:
        return
    if not isinstance(obj, dict):
        # IntOrString and friends are typed "object"; a scalar is fine.
        errors.append("%s: an object expected for %s" % (where, typename))
        return
    by_json = {v: k for k, v in model.attribute_map.items()}
    for key, val in obj.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append("%s.%s: no such field in %s" % (where, key, typename))
            continue
        k8s_validate(val, model.openapi_types[attr], where + "." + key, errors)


def check_pod(kind, workload, proxy, cm, state_volume):
    """The pod of a Deployment or StatefulSet: the security settings,
    mounts, probes and the redirect's arguments.  state_volume(pod, name)
    says whether the volume NAME is the kind of state volume this
    workload should have (emptyDir, or a volumeClaimTemplate)."""
    p = kind + ": "
    pod = workload.get("spec", {}).get("template", {}).get("spec", {})
    inits = {c["name"]: c for c in pod.get("initContainers", [])}
    ctrs = {c["name"]: c for c in pod.get("containers", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    check(p + "pod: seccompProfile RuntimeDefault",
          pod.get("securityContext", {}).get("seccompProfile", {})
          .get("type") == "RuntimeDefault")
    check(p + "pod: an MTA container beside mxtls",
          "mxtls" in ctrs and len(ctrs) >= 2, "containers: %s" % list(ctrs))

    mx = ctrs.get("mxtls", {})
    sc = mx.get("securityContext", {})
    check(p + "mxtls: runAsNonRoot: true", sc.get("runAsNonRoot") is True)
    uid = sc.get("runAsUser")
    check(p + "mxtls: runAsUser is a non-root UID",
          isinstance(uid, int) and uid > 0, "runAsUser: %r" % uid)
    check(p + "mxtls: readOnlyRootFilesystem: true",
          sc.get("readOnlyRootFilesystem") is True)
    check(p + "mxtls: allowPrivilegeEscalation: false",
          sc.get("allowPrivilegeEscalation") is False)
    caps = sc.get("capabilities", {})
    check(p + "mxtls: capabilities drop ALL, add none",
          caps.get("drop") == ["ALL"] and not caps.get("add"), str(caps))
    check(p + "mxtls: args -c /etc/mxtls/mxtls.ini",
          mx.get("args") == ["-c", "/etc/mxtls/mxtls.ini"], str(mx.get("args")))

    mounts = {m["mountPath"]: m for m in mx.get("volumeMounts", [])}
    # A directory below the mount, which mxtls makes and owns: the
    # mount point itself is root's in Kubernetes, and mxtls chmods its
    # state_dir to 0700.
    state_dir = (proxy.get("state_dir") if proxy else None) or ""
    parent = os.path.dirname(state_dir.rstrip("/"))
    sm = mounts.get(parent)
    kind_ok, what = state_volume(pod, sm["name"]) if sm else (False, "")
    check(p + "mxtls: state_dir (%s) is a directory on the %s at %s" %
          (state_dir, what or "state volume", parent),
          sm is not None and kind_ok, "mounts: %s" % list(mounts))
    cmnt = mounts.get("/etc/mxtls")
    cvol = vols.get(cmnt["name"], {}) if cmnt else {}
    check(p + "mxtls: /etc/mxtls is the ConfigMap, read-only",
          cmnt is not None and cmnt.get("readOnly") is True and
          cvol.get("configMap", {}).get("name") ==
          cm.get("metadata", {}).get("name"), str(cmnt))

    ports = {p.get("name"): p["containerPort"] for p in mx.get("ports", [])}
    admin = proxy.get("admin_listen", "127.0.0.1:9925") if proxy else ""
    for probe, path in (("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        hg = mx.get(probe, {}).get("httpGet", {})
        port = hg.get("port")
        port = ports.get(port, port)
        check(p + "mxtls: %s is httpGet %s on the admin port" % (probe, path),
              hg.get("path") == path and admin and port == port_of(admin),
              "%s (admin_listen %s)" % (hg, admin))
    check(p + "mxtls: admin_listen is reachable by the kubelet (not loopback)",
          admin.startswith(("0.0.0.0:", "[::]:")), "admin_listen = %s" % admin)
    if proxy:
        check(p + "ConfigMap: mode = transparent, listen on 127.0.0.1",
              proxy.get("mode") == "transparent" and
              proxy.get("listen", "").startswith("127.0.0.1:"),
              "mode=%s listen=%s" % (proxy.get("mode"), proxy.get("listen")))

    ic = inits.get("mxtls-redirect", {})
    isc = ic.get("securityContext", {})
    icaps = isc.get("capabilities", {})
    check(p + "init mxtls-redirect: capabilities drop ALL, add only NET_ADMIN",
          icaps.get("drop") == ["ALL"] and icaps.get("add") == ["NET_ADMIN"],
          str(icaps))
    check(p + "init mxtls-redirect: allowPrivilegeEscalation: false",
          isc.get("allowPrivilegeEscalation") is False)
    check(p + "init mxtls-redirect: not privileged", not isc.get("privileged"))
    args = ic.get("args", [])

    def opt(name):
        return args[args.index(name) + 1] if name in args[:-1] else None
    check(p + "init mxtls-redirect: runs install", args[:1] == ["install"],
          str(args))
    check(p + "init mxtls-redirect: --uid is mxtls's runAsUser",
          opt("--uid") == str(uid), "--uid %s, runAsUser %s" % (opt("--uid"), uid))
    if proxy:
        check(p + "init mxtls-redirect: --port is mxtls's listen port",
              opt("--port") == str(port_of(proxy.get("listen", ":0"))),
              "--port %s, listen %s" % (opt("--port"), proxy.get("listen")))
    return pod


def main(repo, outdir):
    deploy = os.path.join(repo, "deploy")

    # ---- every YAML file of deploy/ parses ----
    yamls = []
    for dirpath, _, files in os.walk(deploy):
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                yamls.append(os.path.join(dirpath, f))
    docs = {}
    for path in sorted(yamls):
        rel = os.path.relpath(path, repo)
        try:
            docs[rel] = load_all(path)
            ok("%s parses as YAML (%d document%s)" % (
                rel, len(docs[rel]), "" if len(docs[rel]) == 1 else "s"))
        except (yaml.YAMLError, OSError) as e:
            fail("%s parses as YAML" % rel, str(e).replace("\n", " "))

    # ---- Kubernetes ----
    kdir = "deploy/kubernetes"
    kust = docs.get(kdir + "/kustomization.yaml", [{}])[0]
    resources = kust.get("resources", [])
    objs = []
    missing = [r for r in resources
               if kdir + "/" + r not in docs]
    check("kustomization.yaml lists resources that exist and parse",
          resources and not missing, "missing: %s" % missing)
    for r in resources:
        objs += docs.get(kdir + "/" + r, [])
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o.get("kind"), []).append(o)
    check("kubernetes: one ConfigMap and one Deployment",
          len(by_kind.get("ConfigMap", [])) == 1 and
          len(by_kind.get("Deployment", [])) == 1,
          "kinds: %s" % sorted(by_kind))
    cm = (by_kind.get("ConfigMap") or [{}])[0]
    dep = (by_kind.get("Deployment") or [{}])[0]

    try:
        import kubernetes.client  # noqa: F401
        have_k8s = True
    except ImportError:
        have_k8s = False
        note("python3-kubernetes not installed: field names not checked "
             "against the Kubernetes API")
    if have_k8s:
        for o, t in ((cm, "V1ConfigMap"), (dep, "V1Deployment")):
            errors = []
            k8s_validate(o, t, o.get("kind", "?"), errors)
            check("kubernetes: %s fields are Kubernetes API fields" %
                  o.get("kind"), not errors, "; ".join(errors))

    ini_text = (cm.get("data") or {}).get("mxtls.ini", "")
    check("ConfigMap %s holds mxtls.ini" % cm.get("metadata", {}).get("name"),
          bool(ini_text))
    with open(os.path.join(outdir, "kubernetes.ini"), "w") as f:
        f.write(ini_text)
    try:
        ini = ini_of(ini_text)
        proxy = ini["proxy"]
    except (configparser.Error, KeyError) as e:
        fail("ConfigMap mxtls.ini reads as INI", str(e))
        ini, proxy = None, {}

    def empty_dir(pod, name):
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        return "emptyDir" in vols.get(name, {}), "emptyDir"

    dep_pod = check_pod("Deployment", dep, proxy, cm, empty_dir)

    # ---- the StatefulSet variant (statefulset.yaml, outside the
    # kustomization: used instead of deployment.yaml) ----
    sdocs = docs.get(kdir + "/statefulset.yaml", [])
    skinds = {}
    for o in sdocs:
        skinds.setdefault(o.get("kind"), []).append(o)
    check("statefulset.yaml: one Service and one StatefulSet",
          len(skinds.get("Service", [])) == 1 and
          len(skinds.get("StatefulSet", [])) == 1, "kinds: %s" % sorted(skinds))
    sts = (skinds.get("StatefulSet") or [{}])[0]
    svc = (skinds.get("Service") or [{}])[0]
    if have_k8s:
        for o, t in ((sts, "V1StatefulSet"), (svc, "V1Service")):
            errors = []
            k8s_validate(o, t, o.get("kind", "?"), errors)
            check("kubernetes: %s fields are Kubernetes API fields" %
                  o.get("kind"), not errors, "; ".join(errors))
    claims = {c.get("metadata", {}).get("name"): c
              for c in sts.get("spec", {}).get("volumeClaimTemplates", [])}

    def claim(pod, name):
        c = claims.get(name, {}).get("spec", {})
        return ("ReadWriteOnce" in c.get("accessModes", []) and
                bool(c.get("resources", {}).get("requests", {})
                     .get("storage")), "volumeClaimTemplate (ReadWriteOnce)")

    sts_pod = check_pod("StatefulSet", sts, proxy, cm, claim)
    ssc = sts_pod.get("securityContext", {})
    check("StatefulSet: fsGroup is mxtls's group (it writes on the claim)",
          ssc.get("fsGroup") == 10025, str(ssc))
    check("StatefulSet: serviceName is its headless Service",
          sts.get("spec", {}).get("serviceName") ==
          svc.get("metadata", {}).get("name") and
          svc.get("spec", {}).get("clusterIP") == "None")
    check("StatefulSet: the selector matches the pod's labels",
          sts.get("spec", {}).get("selector", {}).get("matchLabels", {})
          .items() <= sts.get("spec", {}).get("template", {})
          .get("metadata", {}).get("labels", {}).items())
    check("StatefulSet: no state volume besides the claim",
          not any(v["name"] in claims for v in sts_pod.get("volumes", [])))
    # No drift: the containers are the Deployment's, word for word.
    for key in ("initContainers", "containers"):
        check("StatefulSet: %s are the Deployment's" % key,
              sts_pod.get(key) == dep_pod.get(key))

    # ---- docker-compose ----
    comp = (docs.get("deploy/docker-compose.yml") or [{}])[0]
    svcs = comp.get("services", {})
    m = svcs.get("mxtls", {})
    p = svcs.get("postfix", {})
    check("compose: services mxtls and postfix", bool(m) and bool(p),
          str(list(svcs)))
    check("compose: mxtls read_only, cap_drop ALL, no-new-privileges",
          m.get("read_only") is True and m.get("cap_drop") == ["ALL"] and
          "no-new-privileges:true" in m.get("security_opt", []))
    src = None
    for v in m.get("volumes", []):
        if isinstance(v, str) and v.split(":")[1:2] == ["/etc/mxtls/mxtls.ini"]:
            src = os.path.normpath(os.path.join(deploy, v.split(":")[0]))
    check("compose: mxtls's config is mounted from an existing file",
          src is not None and os.path.isfile(src), str(src))
    cini = None
    if src and os.path.isfile(src):
        with open(src) as f:
            text = f.read()
        with open(os.path.join(outdir, "compose.ini"), "w") as f:
            f.write(text)
        cini = ini_of(text)
    env = p.get("environment", {})
    relay = env.get("RELAYHOST", "") if isinstance(env, dict) else ""
    if cini is not None:
        check("compose: postfix relays to [mxtls]:<mxtls's listen port>",
              relay == "[mxtls]:%d" % port_of(cini["proxy"]["listen"]),
              "RELAYHOST=%s listen=%s" % (relay, cini["proxy"]["listen"]))
        subnets = [c.get("subnet") for n in comp.get("networks", {}).values()
                   for c in (n or {}).get("ipam", {}).get("config", [])]
        allow = [a.strip() for a in
                 cini["proxy"].get("allow_clients", "").split(",")]
        check("compose: mxtls allows the compose subnet, not everyone",
              subnets and all(s in allow for s in subnets) and
              "0.0.0.0/0" not in allow and "::/0" not in allow,
              "subnets %s, allow_clients %s" % (subnets, allow))
    pdf = os.path.join(deploy, p.get("build", {}).get("context", "-"),
                       "Dockerfile")
    check("compose: the postfix build context has a Dockerfile",
          os.path.isfile(pdf), pdf)
    check("compose: 10025 is not published to the host",
          not m.get("ports"), str(m.get("ports")))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
