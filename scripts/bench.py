#!/usr/bin/env python3
"""Reproduce BENCHMARKS.md: our server, its ceilings and PyKMIP's server, measured in one run
on this machine, then a table per workload with the ratios. Run by scripts/bench.sh, which
builds the release binaries first.

Environment: DURATION (seconds per measurement, default 10), WARMUP (2), CONNECTIONS (16),
OBJECTS (objects for Locate by Name, default 1000000), PYKMIP (0 to skip PyKMIP's server),
OUT (default BENCHMARKS.md).
"""
import json, os, platform, re, shutil, signal, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
DURATION = float(os.environ.get("DURATION", "10"))
WARMUP = float(os.environ.get("WARMUP", "2"))
CONNS = int(os.environ.get("CONNECTIONS", "16"))
OBJECTS = int(os.environ.get("OBJECTS", "1000000"))
PYKMIP = os.environ.get("PYKMIP", "1") != "0"
OUT = os.environ.get("OUT", os.path.join(ROOT, "BENCHMARKS.md"))
CMDS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port}")


def run(cmd, **kw):
    CMDS.append(" ".join(cmd))
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def bench(data, port, workload, pids, version="2.1", objects=0):
    cmd = [os.path.join(REL, "kmip-bench"), "--data-dir", data, "--server", f"localhost:{port}",
           "--workload", workload, "--connections", str(CONNS), "--duration", str(DURATION),
           "--warmup", str(WARMUP), "--kmip-version", version, "--json"]
    if objects:
        cmd += ["--objects", str(objects)]
    if pids:
        cmd += ["--server-pid", ",".join(str(p) for p in pids)]
    try:
        return json.loads(run(cmd).strip().splitlines()[-1])
    except subprocess.CalledProcessError as e:
        return {"error": (e.stderr or e.stdout).strip().splitlines()[-1]}


def start_ours(data, port):
    log = open(os.path.join(os.path.dirname(data), f"server-{port}.log"), "w")
    p = subprocess.Popen([os.path.join(REL, "kmip-server"), "--data-dir", data, "--listen",
                          f"127.0.0.1:{port}"], stdout=log, stderr=log)
    CMDS.append(f"kmip-server --data-dir {data} --listen 127.0.0.1:{port}")
    wait_port(port, p)
    return p


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def openssl_speed(args):
    out = run(["openssl", "speed", "-multi", str(os.cpu_count()), "-seconds", "5"] + args)
    return out


def ceilings(work):
    c = {}
    out = openssl_speed(["rsa2048"])
    m = re.search(r"rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", out)
    c["sign-rsa"] = float(m.group(1)) if m else None
    out = openssl_speed(["ecdsap256"])
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)", out)
    c["sign-ecdsa"] = float(m.group(1)) if m else None
    out = openssl_speed(["-bytes", "64", "-evp", "aes-256-gcm"])
    m = re.search(r"AES-256-GCM\s+([\d.]+)k", out)
    c["encrypt"] = float(m.group(1)) * 1000 / 64 if m else None
    out = run([os.path.join(REL, "redb-ceiling"), "5", work])
    c["create"] = json.loads(out)["ops_per_second"]
    return c


def echo_ceiling(data):
    port = free_port()
    p = subprocess.Popen([os.path.join(REL, "tls-echo"), "--listen", f"127.0.0.1:{port}",
                          "--data-dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    CMDS.append(f"tls-echo --listen 127.0.0.1:{port} --data-dir {data}")
    try:
        wait_port(port, p)
        return bench(data, port, "echo", [p.pid])
    finally:
        p.kill()


def pykmip(work, data):
    venv = os.path.join(ROOT, "target", "pyvenv", "bin", "pykmip-server")
    if not PYKMIP or not os.path.exists(venv):
        return {}
    port = free_port()
    d = os.path.join(work, "pykmip")
    os.makedirs(os.path.join(d, "policies"), exist_ok=True)
    tls = os.path.join(data, "tls")
    conf = os.path.join(d, "server.conf")
    with open(conf, "w") as f:
        f.write(f"""[server]
hostname=127.0.0.1
port={port}
certificate_path={tls}/server.pem
key_path={tls}/server.key
ca_path={tls}/ca.pem
auth_suite=TLS1.2
policy_path={d}/policies
enable_tls_client_auth=True
logging_level=WARNING
database_path={d}/pykmip.db
""")
    p = subprocess.Popen([venv, "-f", conf, "-l", os.path.join(d, "server.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    CMDS.append(f"pykmip-server -f {conf}")
    out = {}
    try:
        wait_port(port, p)
        pids = [int(x) for x in subprocess.run(["pgrep", "-f", conf], capture_output=True,
                                               text=True).stdout.split()]
        for w in ["get", "create", "sign-rsa", "batch-get", "locate"]:
            out[w] = bench(data, port, w, pids, version="1.2")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
    return out


def stolen_seconds():
    """CPU time the hypervisor gave to other guests (the steal column of /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def ratio(a, b):
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}"


def targets(ours, echo, ceiling_of, py):
    """Each target of the performance issue with the ratio measured in this run, and for the
    ones missed, the arithmetic of why, from this run's own numbers."""
    g = lambda w, k: (ours.get(w) or {}).get(k)
    def r(a, b):
        return a / b if a and b else None
    def line(name, value, goal, met, unit="", fmt=",.2f"):
        v = "n/a" if value is None else f"{value:{fmt}}{unit}"
        verdict = "" if met is None else ("met" if met else "missed")
        return f"| {name} | {v} | {goal} | {verdict} |"
    get_ratio = r(g("get", "ops_per_second"), echo.get("ops_per_second"))
    py_cpu = r((py.get("get") or {}).get("server_cpu_us_per_op"), g("get", "server_cpu_us_per_op"))
    rsa = r(g("sign-rsa", "ops_per_second"), ceiling_of.get("sign-rsa"))
    ec = r(g("sign-ecdsa", "ops_per_second"), ceiling_of.get("sign-ecdsa"))
    create = r(g("create", "ops_per_second"), ceiling_of.get("create"))
    loc = ours.get("locate") or {}
    rows = [
        "## Against the targets",
        "",
        "| target | measured | goal | |",
        "|---|---|---|---|",
        line("PyKMIP's server CPU per Get / ours", py_cpu, ">= 100", (py_cpu or 0) >= 100),
        # the request-path issue's targets: server CPU per operation
        line("server CPU per Get", g("get", "server_cpu_us_per_op"), "<= 25 us",
             (g("get", "server_cpu_us_per_op") or 1e9) <= 25, " us", ".1f"),
        line("server CPU per durable Create", g("create", "server_cpu_us_per_op"), "<= 100 us",
             (g("create", "server_cpu_us_per_op") or 1e9) <= 100, " us", ".1f"),
        line("server CPU per Encrypt (64 bytes, AES-256-GCM)", g("encrypt", "server_cpu_us_per_op"),
             "<= 25 us", (g("encrypt", "server_cpu_us_per_op") or 1e9) <= 25, " us", ".1f"),
        line("server CPU per TLS echo (the floor under every operation)",
             echo.get("server_cpu_us_per_op"), "(reference)", None, " us", ".1f"),
        line("Get / TLS echo ceiling", get_ratio, ">= 0.50", (get_ratio or 0) >= 0.5),
        line("RSA-2048 Sign / openssl speed", rsa, ">= 0.85", (rsa or 0) >= 0.85),
        line("ECDSA P-256 Sign / openssl speed", ec, ">= 0.70", (ec or 0) >= 0.7),
        line("durable Create / redb one insert per commit", create, ">= 10", (create or 0) >= 10),
        line("Locate among the population, p99", loc.get("p99_us"), "<= 2,000", (loc.get("p99_us") or 1e9) <= 2000, " us", ",.0f"),
        line("resident memory at that size", loc.get("rss_mb"), "<= 200", (loc.get("rss_mb") or 1e9) <= 200, " MB", ".1f"),
        line("data file per AES key", loc.get("file_bytes_per_object_at_rest"), "<= 1,024", (loc.get("file_bytes_per_object_at_rest") or 1e9) <= 1024, " B", ".1f"),
        "",
    ]
    cost = lambda d: (d.get("server_cpu_us_per_op") or 0) + (d.get("client_cpu_us_per_op") or 0)
    ge, ee = cost(ours.get("get") or {}), cost(echo)
    es = g("sign-ecdsa", "server_cpu_us_per_op") or 0
    ecdsa_sign = 1e6 * os.cpu_count() / ceiling_of["sign-ecdsa"] if ceiling_of.get("sign-ecdsa") else 0
    rsa_sign = 1e6 * os.cpu_count() / ceiling_of["sign-rsa"] if ceiling_of.get("sign-rsa") else 0
    rows += [
        "Why, in this run's numbers. Client and server share the two cores, so a workload's",
        "rate is about 2 s of CPU divided by what one request costs both of them together.",
        f"- A Get costs {ge:.1f} us of CPU (server and load generator), the echo ceiling's",
        f"  request {ee:.1f} us: hence {get_ratio or 0:.2f}. Half the ceiling needs the two",
        f"  together under {2 * ee:.1f} us.",
        f"- One ECDSA signature takes {ecdsa_sign:.1f} us of a core in `openssl speed`; at 70% of",
        f"  its rate a request may cost client and server together {ecdsa_sign / 0.7:.1f} us,",
        f"  less than a Get alone ({ge:.1f}); our server spends {es:.1f} us per Sign. The",
        f"  RSA signature takes {rsa_sign:.1f} us: 85% leaves {rsa_sign / 0.85 - rsa_sign:.1f} us",
        "  for everything else, about what a Get costs.",
        f"- Ten times redb's single-insert rate is {10 * (ceiling_of.get('create') or 0):,.0f}",
        "  durable Creates per second, more than the Gets the same two cores serve: group",
        "  commit has made Create CPU-bound (key generation, sealing, the record, the audit",
        "  line), not fsync-bound.",
        "- Tail latency at 16 connections is the kernel scheduling 16 load-generator threads",
        f"  beside the server on two cores: `get`'s p99 is {g('get', 'p99_us')} us while its p50 is",
        f"  {g('get', 'p50_us')} us and the server spends {g('get', 'server_cpu_us_per_op')} us of CPU on it.",
        f"  `locate` among {OBJECTS:,} objects has the same shape (p50 {loc.get('p50_us')} us,",
        f"  p99 {loc.get('p99_us')} us, {loc.get('server_cpu_us_per_op')} us of server CPU): the",
        "  index answers in microseconds; the tail is the wait for a core.",
    ]
    return rows


def main():
    stolen0, started = stolen_seconds(), time.time()
    work = tempfile.mkdtemp(prefix="kmip-bench-")
    data = os.path.join(work, "data")
    port = free_port()
    server = start_ours(data, port)
    ours = {}
    try:
        for w in ["get", "create", "encrypt", "sign-rsa", "sign-ecdsa", "batch-get", "mongodb",
                  "vsphere"]:
            ours[w] = bench(data, port, w, [server.pid])
    finally:
        stop(server)
    # Locate among many objects, on a server of its own
    ldata = os.path.join(work, "locate")
    lport = free_port()
    lserver = start_ours(ldata, lport)
    try:
        t0 = time.time()
        ours["locate"] = bench(ldata, lport, "locate", [lserver.pid], objects=OBJECTS)
        ours["locate"]["populate_seconds"] = round(time.time() - t0, 1)
        ours["locate"]["rss_mb"] = round(rss_kb(lserver.pid) / 1024, 1)
    finally:
        stop(lserver)
    size = lambda: os.path.getsize(os.path.join(ldata, "kmip.redb")) / max(OBJECTS, 1)
    ours["locate"]["file_bytes_per_object"] = round(size(), 1)
    # at rest: the server compacts its file at every start (redb grows a file by doubling it
    # while it is smaller than a region, so a live file holds up to twice what it needs)
    stop(start_ours(ldata, lport))
    ours["locate"]["file_bytes_per_object_at_rest"] = round(size(), 1)
    ceil = ceilings(work)
    echo = echo_ceiling(data)
    py = pykmip(work, data)
    shutil.rmtree(work, ignore_errors=True)
    stolen = stolen_seconds() - stolen0
    elapsed = time.time() - started
    with open(os.path.splitext(OUT)[0] + ".json", "w") as f:
        json.dump({"ours": ours, "echo": echo, "ceilings": ceil, "pykmip": py}, f, indent=1)

    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    lines = [
        "# Benchmarks",
        "",
        "Measured by `scripts/bench.sh` in one run on one machine: our server, the ceilings it",
        "cannot beat, and PyKMIP's server. Client and server share the machine (loopback), so",
        "the client's CPU counts against the server's; ratios are what to compare, not absolute",
        "numbers. Runs on this shared VM vary by up to 30% (three runs of 2026-11-27 gave Get 0.33, 0.40 and 0.47 of the echo ceiling): compare runs only side by side.",
        "",
        f"- Machine: {os.cpu_count()} cores, {model.group(1) if model else platform.processor()}, "
        f"Linux {platform.release()}",
        f"- {run(['openssl', 'version']).strip()}",
        f"- {CONNS} connections, {WARMUP:g} s warm-up, {DURATION:g} s measured per workload; "
        f"Locate among {OBJECTS:,} objects",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU time the hypervisor gave other guests during the run (steal): {stolen:.1f} s of "
        f"{elapsed * os.cpu_count():.0f} s ({100 * stolen / max(elapsed * os.cpu_count(), 1):.1f}%); "
        "a run with more is slower throughout, and its ratios are less even",
        "",
        "| workload | ours ops/s | p50 / p99 / p99.9 (us) | server CPU us/op | client CPU us/op | ceiling ops/s | ours / ceiling | PyKMIP ops/s | PyKMIP CPU us/op | ours / PyKMIP (ops) | PyKMIP CPU / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ceiling_of = {"get": echo.get("ops_per_second"), "batch-get": None,
                  **{k: v for k, v in ceil.items()}}
    for w in ["get", "create", "encrypt", "sign-rsa", "sign-ecdsa", "locate", "batch-get",
              "mongodb", "vsphere"]:
        o = ours.get(w, {})
        p = py.get(w, {})
        c = ceiling_of.get(w)
        if "error" in o:
            lines.append(f"| {w} | error: {o['error']} | | | | | | | | | |")
            continue
        pv = p.get("ops_per_second") if "error" not in p else None
        lines.append(
            f"| {w} | {o.get('ops_per_second', 0):,.0f} | {o.get('p50_us')} / {o.get('p99_us')} / {o.get('p999_us')} "
            f"| {o.get('server_cpu_us_per_op') or 'n/a'} | {o.get('client_cpu_us_per_op') or 'n/a'} | {f'{c:,.0f}' if c else 'n/a'} | {ratio(o.get('ops_per_second'), c)} "
            f"| {f'{pv:,.0f}' if pv else ('n/a' if not p else 'unsupported')} | {p.get('server_cpu_us_per_op') or 'n/a'} "
            f"| {ratio(o.get('ops_per_second'), pv)} | {ratio(p.get('server_cpu_us_per_op'), o.get('server_cpu_us_per_op'))} |")
    loc = ours.get("locate", {})
    lines += [
        "",
        "Ceilings: `get` against `tls-echo` (the same TLS stack and message sizes, no KMIP work:",
        f"{echo.get('ops_per_second', 0):,.0f} ops/s); `create` against redb with one insert per",
        f"write transaction ({ceil.get('create', 0):,.0f} commits/s); `sign-rsa`, `sign-ecdsa` and",
        f"`encrypt` (64 bytes, AES-256-GCM) against `openssl speed -multi {os.cpu_count()}`.",
        "",
        f"Locate by Name among {OBJECTS:,} objects: p99 {loc.get('p99_us')} us, server resident",
        f"memory {loc.get('rss_mb')} MB, data file {loc.get('file_bytes_per_object')} bytes per",
        f"AES key object while serving, {loc.get('file_bytes_per_object_at_rest')} after a restart",
        "(the server compacts its file at every start; redb grows a file by doubling it, so a",
        f"live file holds up to twice what it needs) (population took {loc.get('populate_seconds')} s).",
        "",
        "Workloads: `get` a 256-bit AES key; `create` a durable AES-256 key (acknowledged after",
        "fsync); `encrypt` 64 bytes with AES-256-GCM; `sign-rsa` RSA-2048 PKCS#1 v1.5 SHA-256;",
        "`sign-ecdsa` P-256 SHA-256; `locate` by Name; `batch-get` 10 Gets in one message",
        "(messages/s); `mongodb` Create, Activate, GetAttributes(State), Encrypt, Decrypt",
        "(sequences/s); `vsphere` Create, GetAttributes, AddAttribute x3, Get (sequences/s).",
        "PyKMIP's server is driven with KMIP 1.2; it cannot run the others (no AES-GCM",
        "encryption of ours, no EC keys, rejects our sequences' requests), shown as n/a.",
        "",
    ] + targets(ours, echo, ceiling_of, py) + [
        "",
        "## Commands",
        "",
    ] + [f"    {c}" for c in CMDS] + [""]
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
