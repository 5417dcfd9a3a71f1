"""deploy/ checks; run through deploy/check.sh (which makes the venv). See check.sh."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
BIN_DIR = Path(os.environ.get("STARLING_BIN_DIR", REPO / "target" / "debug"))
VENV_BIN = Path(sys.executable).parent

failures: list[str] = []
skipped: list[str] = []
passed = 0


def check(name: str, ok: bool, detail: str = "") -> None:
    global passed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failures.append(name)
        print(f"FAIL  {name}{': ' + detail if detail else ''}")


def skip(name: str, why: str) -> None:
    skipped.append(name)
    print(f"SKIP  {name}: {why}")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def load_yaml(path: Path):
    return yaml.safe_load(path.read_text())


def toml(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def grace(config: Path) -> int:
    """server.shutdown_grace_secs of a node config (the binary's default: 30)."""
    return int(toml(config).get("server", {}).get("shutdown_grace_secs", 30))


def port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def duration_secs(text: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m)", str(text))
    if not m:
        raise ValueError(f"unsupported duration {text!r}")
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60}[m[2]]


def env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
def parse_everything() -> None:
    for path in sorted(DEPLOY.rglob("*")):
        rel = path.relative_to(REPO)
        try:
            if path.suffix in (".yml", ".yaml"):
                docs = list(yaml.safe_load_all(path.read_text()))
                check(f"parses: {rel}", all(d is not None for d in docs), "empty document")
            elif path.suffix == ".json":
                json.loads(path.read_text())
                check(f"parses: {rel}", True)
            elif path.suffix == ".toml":
                toml(path)
                check(f"parses: {rel}", True)
        except Exception as e:  # noqa: BLE001 - any parse error is the finding
            check(f"parses: {rel}", False, str(e))


def promtool() -> None:
    tool = shutil.which("promtool")
    if tool is None:
        skip("promtool", "not installed (Debian package `prometheus`; scripts/test.sh installs it as root)")
        return
    prom = DEPLOY / "prometheus"
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "tests/alerts_test.yml"]):
        r = run([tool, *args], cwd=prom)
        check(f"promtool {' '.join(args)}", r.returncode == 0, r.stdout + r.stderr)


# ---------------------------------------------------------------------------------------------
def compose() -> None:
    cdir = DEPLOY / "compose"
    path = cdir / "docker-compose.yml"
    r = run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)])
    check("compose: compose-spec schema", r.returncode == 0, r.stdout + r.stderr)

    spec = load_yaml(path)
    services = spec["services"]
    nodes = sorted(n for n in services if n.startswith("starling-"))
    check("compose: three nodes", nodes == ["starling-1", "starling-2", "starling-3"], str(nodes))
    config = cdir / "starling.toml"
    cfg = toml(config)
    http_port = port(cfg["server"]["listen"])
    metrics_port = port(cfg["server"]["metrics_listen"])
    gossip_port = port(cfg["cluster"]["gossip_listen"])
    subnet = ipaddress.ip_network(spec["networks"]["starling"]["ipam"]["config"][0]["subnet"])
    for name in nodes:
        svc = services[name]
        cmd = svc["command"]
        flags = dict(zip(cmd[1::2], cmd[2::2]))
        ip = svc["networks"]["starling"]["ipv4_address"]
        check(f"compose: {name} node id is its name", flags.get("--node-id") == name, str(flags))
        check(f"compose: {name} advertises its own address",
              flags.get("--gossip-advertise") == f"{ip}:{gossip_port}" and ipaddress.ip_address(ip) in subnet,
              f"{flags.get('--gossip-advertise')} vs {ip} in {subnet}")
        seeds = sorted(flags.get("--seeds", "").split(","))
        check(f"compose: {name} seeds every node", seeds == [f"{n}:{gossip_port}" for n in nodes], str(seeds))
        check(f"compose: {name} stop grace > shutdown grace",
              duration_secs(svc["stop_grace_period"]) > grace(config), svc["stop_grace_period"])
        mounts = [v.split(":")[1] for v in svc["volumes"]]
        check(f"compose: {name} mounts config and data dir",
              "/etc/starling/starling.toml" in mounts and cfg["cluster"]["data_dir"] in mounts, str(mounts))
    # Every bind mount and env file names a file that is shipped.
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                check(f"compose: {name} mount {source} exists", (cdir / source).exists())
        for entry in svc.get("env_file", []):
            if isinstance(entry, dict) and entry.get("required", True):
                check(f"compose: {name} env file {entry['path']} exists", (cdir / entry["path"]).exists())
        build = svc.get("build")
        if build:
            check(f"compose: {name} Dockerfile exists", (cdir / build["context"] / build["dockerfile"]).exists())
    # nginx balances over every node's API port.
    nginx = (cdir / "nginx.conf").read_text()
    upstreams = sorted(re.findall(r"^\s*server\s+([\w.-]+:\d+)", nginx, re.M))
    check("compose: nginx upstream is every node's API port",
          upstreams == [f"{n}:{http_port}" for n in nodes], str(upstreams))
    # Prometheus scrapes every node's metrics port.
    prom = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "starling")
    targets = sorted(t for sc in job["static_configs"] for t in sc["targets"])
    check("compose: Prometheus scrapes every node's metrics port",
          targets == [f"{n}:{metrics_port}" for n in nodes], str(targets))
    # Grafana's provisioning points at what the compose file mounts.
    ds = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    check("compose: Grafana data source is the compose Prometheus", ds["url"] == "http://prometheus:9090", ds["url"])
    dash = load_yaml(DEPLOY / "grafana/provisioning/dashboards/starling.yml")["providers"][0]
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    check("compose: Grafana loads the mounted dashboards",
          grafana_mounts.get(dash["options"]["path"]) == "../grafana/dashboards", str(grafana_mounts))
    env = env_file(cdir / ".env.example")
    check("compose: .env.example sets the cluster secret and admin token",
          env.get("STARLING_CLUSTER_SECRET", "").startswith("starling-v1:") and env.get("STARLING_ADMIN_TOKEN"))


# ---------------------------------------------------------------------------------------------
def kubernetes() -> list[dict]:
    kdir = DEPLOY / "kubernetes"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        skip("kubernetes", "kubectl not installed (it renders the kustomization)")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "k"
        shutil.copytree(kdir, work)
        shutil.copy(kdir / "secret.env.example", work / "secret.env")
        r = run([kubectl, "kustomize", str(work)])
        check("kubernetes: kubectl kustomize", r.returncode == 0, r.stderr)
        if r.returncode != 0:
            return []
        rendered = Path(tmp) / "rendered.yaml"
        rendered.write_text(r.stdout)
        v = run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", str(rendered)])
        # A kind without a schema (the ServiceMonitor CRD) is a warning; anything else fails.
        errors = [l for l in (v.stdout + v.stderr).splitlines() if "ERROR" in l or "did not validate" in l]
        check("kubernetes: API schemas (kubernetes-validate --strict)", v.returncode == 0 and not errors,
              v.stdout + v.stderr)
        docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    sts = by_kind["StatefulSet"][0]
    pod = sts["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    cm = by_kind["ConfigMap"][0]
    cfg = tomllib.loads(cm["data"]["starling.toml"])
    g = int(cfg["server"].get("shutdown_grace_secs", 30))
    check("kubernetes: terminationGracePeriodSeconds > shutdown_grace_secs",
          pod["terminationGracePeriodSeconds"] > g, f"{pod['terminationGracePeriodSeconds']} vs {g}")
    check("kubernetes: readiness /readyz, liveness /healthz",
          ctr["readinessProbe"]["httpGet"]["path"] == "/readyz" and ctr["livenessProbe"]["httpGet"]["path"] == "/healthz")
    ports = {p["name"]: p for p in ctr["ports"]}
    check("kubernetes: container ports match the config",
          ports["http"]["containerPort"] == port(cfg["server"]["listen"])
          and ports["metrics"]["containerPort"] == port(cfg["server"]["metrics_listen"])
          and ports["gossip"]["containerPort"] == port(cfg["cluster"]["gossip_listen"])
          and ports["gossip"]["protocol"] == "UDP", str(ports))
    mounts = {m["name"]: m["mountPath"] for m in ctr["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]]
    check("kubernetes: the data dir is on the PVC",
          mounts.get("data") == cfg["cluster"]["data_dir"] and "data" in claims, str(mounts))
    args = ctr["args"]
    check("kubernetes: node id is the pod name, advertise the pod IP",
          "--node-id=$(POD_NAME)" in args and any(a.startswith("--gossip-advertise=$(POD_IP):") for a in args), str(args))
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    headless = services[sts["spec"]["serviceName"]]
    seeds = next(a for a in args if a.startswith("--seeds=")).split("=", 1)[1]
    check("kubernetes: seeds are the headless Service, publishing not-ready pods",
          headless["spec"]["clusterIP"] == "None" and headless["spec"].get("publishNotReadyAddresses") is True
          and seeds == f"{headless['metadata']['name']}:{port(cfg['cluster']['gossip_listen'])}", seeds)
    labels = sts["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    for s in services.values():
        check(f"kubernetes: Service {s['metadata']['name']} selects the pods", selects(s["spec"]["selector"]))
    pdb = by_kind["PodDisruptionBudget"][0]
    check("kubernetes: PodDisruptionBudget selects the pods", selects(pdb["spec"]["selector"]["matchLabels"]))
    sm = by_kind["ServiceMonitor"][0]
    monitored = [s for s in services.values()
                 if all(s["metadata"].get("labels", {}).get(k) == v
                        for k, v in sm["spec"]["selector"]["matchLabels"].items())]
    port_names = {p["name"] for s in monitored for p in s["spec"]["ports"]}
    check("kubernetes: ServiceMonitor finds one Service with its port",
          len(monitored) == 1 and all(e["port"] in port_names for e in sm["spec"]["endpoints"]), str(port_names))
    check("kubernetes: ServiceMonitor job label is `starling` (the alerts' job)",
          sts["metadata"]["labels"].get(sm["spec"]["jobLabel"]) == "starling")
    secret_keys = set(by_kind["Secret"][0]["data"])
    check("kubernetes: Secret holds the cluster secret and admin token",
          {"STARLING_CLUSTER_SECRET", "STARLING_ADMIN_TOKEN"} <= secret_keys, str(secret_keys))
    return [{"name": "kubernetes", "config_text": cm["data"]["starling.toml"], "args": args}]


# ---------------------------------------------------------------------------------------------
def systemd() -> dict:
    unit = DEPLOY / "systemd" / "starling.service"
    text = unit.read_text()
    service = dict(
        l.split("=", 1) for l in text.split("[Service]")[1].split("[Install]")[0].splitlines()
        if "=" in l and not l.startswith("#"))
    config = DEPLOY / "systemd" / "starling.toml"
    check("systemd: TimeoutStopSec > shutdown_grace_secs", int(service["TimeoutStopSec"]) > grace(config))
    check("systemd: SIGTERM, restart on failure, state dir, file limit",
          service.get("KillSignal") == "SIGTERM" and service.get("Restart") == "on-failure"
          and service.get("StateDirectory") == "starling" and int(service.get("LimitNOFILE", 0)) >= 65536)
    analyze = shutil.which("systemd-analyze")
    starling = BIN_DIR / "starling"
    if analyze is None:
        skip("systemd: systemd-analyze verify", "systemd-analyze not installed")
    elif not starling.exists():
        skip("systemd: systemd-analyze verify", f"{starling} not built")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "starling.service"
            # verify wants the ExecStart binary to exist: point it at the built one.
            copy.write_text(text.replace("/usr/local/bin/starling ", f"{starling} "))
            r = run([analyze, "verify", str(copy)])
            out = (r.stdout + r.stderr).strip()
            check("systemd: systemd-analyze verify (no warnings)", r.returncode == 0 and not out, out)
    env = env_file(DEPLOY / "systemd" / "starling.env")
    argv = service["ExecStart"].split()[1:]
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env[m[1]], a) for a in argv]
    return {"name": "systemd", "argv": argv, "env": env}


def dockerfile() -> dict:
    text = (DEPLOY / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (?!--from)(\S+(?: \S+)*) \S+$", text, re.M):
        for s in src.split():
            if not s.startswith("target/"):
                check(f"Dockerfile: COPY source {s} exists", (REPO / s).exists())
    image_cfg = toml(DEPLOY / "docker" / "starling.toml")
    exposed = set(re.findall(r"(\d+)/(tcp|udp)", " ".join(re.findall(r"^EXPOSE (.*)$", text, re.M))))
    want = {(str(port(image_cfg["server"]["listen"])), "tcp"), (str(port(image_cfg["server"]["metrics_listen"])), "tcp"),
            (str(port(image_cfg["cluster"]["gossip_listen"])), "udp")}
    check("Dockerfile: EXPOSE covers the image config's ports", want <= exposed, f"{exposed} vs {want}")
    check("Dockerfile: runs as a non-root user", re.search(r"^USER 10001", text, re.M) is not None)
    check("Dockerfile: data dir is a VOLUME",
          f'VOLUME ["{image_cfg["cluster"]["data_dir"]}"]' in text)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    check("Dockerfile: context keeps the release binaries for BINARIES=local",
          "target" in ignore and "!target/release/starling" in ignore and "!target/release/starling-mock" in ignore)
    cmd = json.loads(re.findall(r"^CMD (.*)$", text, re.M)[-1])
    return {"name": "docker", "argv": cmd + ["--config", str(DEPLOY / "docker" / "starling.toml")], "env": {}}


# ---------------------------------------------------------------------------------------------
def print_config(name: str, argv: list[str], env: dict[str, str]) -> None:
    """The deploy target's command line and config, as the real binary reads them."""
    starling = BIN_DIR / "starling"
    r = run([str(starling), *argv, "--print-config"], env={**os.environ, **env})
    check(f"{name}: `starling {' '.join(argv[:1])} ... --print-config` accepts the command line and config",
          r.returncode == 0, r.stderr)


def wait_for(what: str, timeout: float, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def healthcheck(addr: str, path: str = "/healthz") -> int:
    env = {**os.environ, "STARLING_HEALTH_ADDR": addr, "STARLING_HEALTH_PATH": path}
    return run(["bash", str(DEPLOY / "docker" / "healthcheck.sh")], env=env).returncode


def live_node_and_probe(env: dict[str, str]) -> None:
    """Starts a node from the compose config (loopback ports) with the demo env file's secret, and
    runs the image's health probe against it and against a dead port; the mock likewise."""
    starling = BIN_DIR / "starling"
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        log = open(Path(tmp) / "node.log", "w")
        proc = subprocess.Popen(
            [str(starling), "serve", "--config", str(DEPLOY / "compose" / "starling.toml"),
             "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--gossip-listen", "127.0.0.1:0",
             "--node-id", "check-1", "--data-dir", str(Path(tmp) / "data"), "--ready-file", str(ready)],
            env={**os.environ, **env, "RUST_LOG": "warn"}, stdout=log, stderr=log)
        try:
            def ready_addrs():
                if proc.poll() is not None:
                    raise RuntimeError(f"node exited: {(Path(tmp) / 'node.log').read_text()}")
                try:
                    return json.loads(ready.read_text())
                except (OSError, ValueError):
                    return None
            addrs = wait_for("the node's ready file", 30, ready_addrs)
            check("live: a node starts from the compose config with .env.example's secret", True)
            check("live: health probe passes on the API port", healthcheck(addrs["http"]) == 0)
            check("live: health probe passes on the metrics port", healthcheck(addrs["metrics"]) == 0)
            check("live: health probe on /readyz passes", healthcheck(addrs["http"], "/readyz") == 0)
            check("live: health probe fails on a 404", healthcheck(addrs["http"], "/nothing-here") != 0)
            keyless = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"http://{addrs['http']}/v1/chat/completions",
                           "-d", '{"model":"starling-demo","messages":[{"role":"user","content":"hi"}]}'])
            check("live: the compose node refuses a request without a key", keyless.stdout.strip() == "401",
                  keyless.stdout + keyless.stderr)
            traffic = run(["sh", str(DEPLOY / "compose" / "traffic.sh")],
                          env={**os.environ, **env, "GATEWAY": f"http://{addrs['http']}", "REQUESTS": "1"})
            check("live: the compose traffic script creates a virtual key and is served with it",
                  traffic.returncode == 0, traffic.stdout + traffic.stderr)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        # The node is gone: its port refuses, and the probe must say unhealthy.
        check("live: health probe fails on a dead port", healthcheck(addrs["http"]) != 0)

    mock = BIN_DIR / "starling-mock"
    if not mock.exists():
        skip("live: mock health probe", f"{mock} not built")
        return
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready.json"
        proc = subprocess.Popen([str(mock), "--listen", "127.0.0.1:0", "--ready-file", str(ready)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def mock_ready():
                if proc.poll() is not None:
                    raise RuntimeError("the mock exited")
                try:
                    return json.loads(ready.read_text())
                except (OSError, ValueError):
                    return None
            addr = wait_for("the mock's ready file", 30, mock_ready)["http"]
            # The mock image's HEALTHCHECK probes the path its ENV names.
            path = re.search(r"STARLING_HEALTH_PATH=(\S+)", (DEPLOY / "Dockerfile").read_text())[1]
            check(f"live: health probe passes on the mock's {path}", healthcheck(addr, path) == 0)
        finally:
            proc.kill()
            proc.wait()


def main() -> int:
    parse_everything()
    promtool()
    compose()
    k8s = kubernetes()
    targets = [systemd(), dockerfile()]
    starling = BIN_DIR / "starling"
    if not starling.exists():
        skip("command lines and live probe", f"{starling} not built (cargo build -p starling --bin starling)")
    else:
        secrets = {"STARLING_CLUSTER_SECRET": env_file(DEPLOY / "compose" / ".env.example")["STARLING_CLUSTER_SECRET"],
                   "STARLING_ADMIN_TOKEN": "check-admin-token-long-enough"}
        with tempfile.TemporaryDirectory() as tmp:
            for t in k8s:
                config = Path(tmp) / "k8s.toml"
                config.write_text(t["config_text"])
                pod_env = {"POD_NAME": "starling-0", "POD_IP": "10.1.2.3"}
                argv = [re.sub(r"\$\((\w+)\)", lambda m: pod_env[m[1]], a) for a in t["args"]]
                argv = [a if not a.startswith("--config=") else f"--config={config}" for a in argv]
                print_config("kubernetes", argv, secrets)
            for t in targets:
                argv = [a if a != "/etc/starling/starling.toml" else str(DEPLOY / t["name"] / "starling.toml")
                        for a in t["argv"]]
                print_config(t["name"], argv, {**secrets, **t["env"]})
            compose_spec = load_yaml(DEPLOY / "compose" / "docker-compose.yml")
            for name in ("starling-1",):
                cmd = compose_spec["services"][name]["command"]
                print_config("compose", cmd + ["--config", str(DEPLOY / "compose" / "starling.toml")], secrets)
        live_node_and_probe(env_file(DEPLOY / "compose" / ".env.example"))
    print(f"deploy: {passed} passed, {len(failures)} failed, {len(skipped)} skipped")
    for f in failures:
        print(f"  failed: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
