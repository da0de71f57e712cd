#!/usr/bin/env python3
"""The PostgreSQL section of BENCHMARKS.md: Create, Get and Locate on redb and on 1, 2 and 3
server nodes over one PostgreSQL database, in one run on this machine, beside pgbench's durable
single-row SERIALIZABLE insert rate (the ceiling a Create cannot beat). Run by
scripts/bench_postgres.sh, which builds the release binaries first.

The load generator splits its connections between the nodes (CONNECTIONS in all), so every
configuration gets the same client load; client, nodes and database share the machine.

Environment: DURATION (seconds per measurement, default 10), WARMUP (2), CONNECTIONS (16),
OBJECTS (objects for Locate by Name, default 10000), OUT (default BENCHMARKS.md).
"""
import os, re, shutil, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

OBJECTS = int(os.environ.get("OBJECTS", "10000"))
# rounds of the interleaved measurement behind the targets (the host's speed drifts by a fifth
# within minutes: a ratio of two numbers measured minutes apart says as much of the drift)
ROUNDS = int(os.environ.get("ROUNDS", "3"))
PG_BIN = sorted(d for d in (os.path.join("/usr/lib/postgresql", v, "bin")
                            for v in os.listdir("/usr/lib/postgresql"))
                if os.path.exists(os.path.join(d, "initdb")))[-1]
ROOT_USER = os.geteuid() == 0
MARK = "## PostgreSQL: stateless nodes over one database"


def pg(program, *args, **kw):
    cmd = [os.path.join(PG_BIN, program), *args]
    if ROOT_USER:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


class Cluster:
    def __init__(self, work):
        self.dir = os.path.join(work, "pg")
        os.makedirs(self.dir)
        if ROOT_USER:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = B.free_port()
        # durable, as a deployment runs it: fsync and synchronous commit on (the defaults)
        pg("initdb", "-D", self.data, "-A", "trust", "-U", "postgres")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("max_connections = 300\nshared_buffers = 256MB\n")
        pg("pg_ctl", "-D", self.data, "-o",
           f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1",
           "-l", os.path.join(self.dir, "log"), "-w", "start")

    def sql(self, db, sql):
        return pg("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                  "-At", "-v", "ON_ERROR_STOP=1", "-c", sql).strip()

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self):
        pg("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")


def pgbench_ceiling(c, work, db="ceiling"):
    c.sql("postgres", f"CREATE DATABASE {db}")
    c.sql(db, "CREATE TABLE t (id bigserial PRIMARY KEY, body bytea NOT NULL)")
    script = os.path.join(work, "insert.sql")
    with open(script, "w") as f:
        f.write("BEGIN ISOLATION LEVEL SERIALIZABLE;\n"
                "INSERT INTO t (body) VALUES (decode(repeat('ab', 900), 'hex'));\n"
                "COMMIT;\n")
    if ROOT_USER:
        shutil.chown(script, "postgres", "postgres")
    out = pg("pgbench", "-h", "127.0.0.1", "-p", str(c.port), "-U", "postgres", "-n",
             "-c", str(B.CONNS), "-j", "2", "-T", str(int(B.DURATION)), "-f", script, db)
    m = re.search(r"tps = ([0-9.]+) \(without initial connection", out)
    return float(m.group(1)) if m else None


def start_node(data, port, store, name):
    log = open(os.path.join(os.path.dirname(data), f"{name}.log"), "w")
    cmd = [os.path.join(B.REL, "kmip-server"), "--data-dir", data, "--listen",
           f"127.0.0.1:{port}", "--store", store, "--node-name", name]
    p = subprocess.Popen(cmd, stdout=log, stderr=log)
    B.wait_port(port, p)
    return p


def start_nodes(work, store, n):
    """n nodes; the first makes the master key and TLS material, the others copy them."""
    nodes = []
    first = os.path.join(work, f"node-0-{time.time_ns()}")
    for i in range(n):
        data = first if i == 0 else first + f"-{i}"
        if i > 0:
            os.makedirs(data)
            shutil.copy2(os.path.join(first, "master.key"), data)
            if os.path.exists(os.path.join(first, "master.check")):
                shutil.copy2(os.path.join(first, "master.check"), data)
            shutil.copytree(os.path.join(first, "tls"), os.path.join(data, "tls"))
        port = B.free_port()
        nodes.append((data, port, start_node(data, port, store, f"node-{i}")))
    return nodes


def busy_ticks():
    """CPU time the whole machine spent busy so far, in clock ticks (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def postgres_ticks(cluster):
    """CPU time of the cluster's processes, those that ended included (the postmaster's
    children's times)."""
    pid = int(open(os.path.join(cluster.data, "postmaster.pid")).readline())
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            f = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        parts = f[f.rindex(")") + 2:].split()
        if int(p) == pid:
            total += sum(int(x) for x in parts[11:15])
        elif int(parts[1]) == pid:
            total += int(parts[11]) + int(parts[12])
    return total


def measure(nodes, workload, objects=0):
    """One load generator per node, the connections split between them, run together."""
    results = [None] * len(nodes)

    def one(i, data, port):
        results[i] = B.bench(data, port, workload, [], objects=objects)
    saved, B.CONNS = B.CONNS, max(1, B.CONNS // len(nodes))
    try:
        threads = [threading.Thread(target=one, args=(i, data, port))
                   for i, (data, port, _) in enumerate(nodes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        B.CONNS = saved
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"error": errors[0]}
    bad = [r["first_error"] for r in results if r.get("errors")]
    if bad:
        return {"error": str(bad[0])}
    return {"ops": sum(r["ops_per_second"] for r in results),
            "p50": max(r["p50_us"] for r in results),
            "p99": max(r["p99_us"] for r in results)}


def main():
    work = tempfile.mkdtemp(prefix="kmip-bench-pg-")
    if ROOT_USER:
        shutil.chown(work, "postgres", "postgres")
    cluster = Cluster(work)
    rows = []
    load = os.getloadavg()[0]
    start = (busy_ticks(), postgres_ticks(cluster), os.times())
    try:
        ceiling = pgbench_ceiling(cluster, work)
        configs = [("redb", "redb", 1)] + [(f"PostgreSQL, {n} node{'s' if n > 1 else ''}",
                                            None, n) for n in (1, 2, 3)]
        for k, (label, store, n) in enumerate(configs):
            if store is None:
                cluster.sql("postgres", f"CREATE DATABASE kmip{k}")
                store = cluster.url(f"kmip{k}")
            nodes = start_nodes(work, store, n)
            try:
                r = {w: measure(nodes, w) for w in ("create", "get")}
                r["locate"] = measure(nodes, "locate", objects=max(1, OBJECTS // n))
            finally:
                for _, _, p in nodes:
                    B.stop(p)
            rows.append((label, r))
            print(label, r, flush=True)
        rounds = interleaved(cluster, work)
        # CPU the machine spent on anything but this run: other users' work, which slows it
        end = (busy_ticks(), postgres_ticks(cluster), os.times())
        tick = os.sysconf("SC_CLK_TCK")
        ours = (end[2].children_user + end[2].children_system + end[2].user + end[2].system
                - start[2].children_user - start[2].children_system - start[2].user
                - start[2].system)
        others = ((end[0] - start[0]) - (end[1] - start[1])) / tick - ours
        others = max(0.0, others) / max(1e-9, end[2].elapsed - start[2].elapsed)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    write(ceiling, rows, load, others, rounds)


def interleaved(cluster, work):
    """The targets' numbers, each pair measured back to back, ROUNDS times: pgbench's ceiling
    then a node's Creates; Get on redb then Get on PostgreSQL."""
    cluster.sql("postgres", "CREATE DATABASE kmipr")
    pg_node = start_nodes(work, cluster.url("kmipr"), 1)
    redb_node = start_nodes(work, "redb", 1)
    out = []
    try:
        for r in range(ROUNDS):
            ceiling = pgbench_ceiling(cluster, work, f"ceiling{r}")
            create = measure(pg_node, "create")
            redb_get = measure(redb_node, "get")
            pg_get = measure(pg_node, "get")
            out.append({"ceiling": ceiling, "create": create.get("ops"),
                        "redb_get": redb_get.get("ops"), "pg_get": pg_get.get("ops")})
            print("round", r, out[-1], flush=True)
    finally:
        for _, _, p in pg_node + redb_node:
            B.stop(p)
    return out


def median(v):
    v = sorted(x for x in v if x is not None)
    return v[len(v) // 2] if v else None


def cell(r):
    if "error" in r:
        return "error", "", ""
    return f"{r['ops']:,.0f}", f"{r['p50']:.0f} / {r['p99']:.0f}", r["ops"]


def write(ceiling, rows, load, others, rounds):
    lines = [MARK, "",
             f"Measured by `scripts/bench_postgres.sh` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},"
             f" same machine: PostgreSQL {pg('postgres', '--version').split()[-1]} (fsync and"
             f" synchronous commit on) on the same 2 cores as the nodes and the load generator;"
             f" {B.CONNS} connections in all, split between the nodes; {B.DURATION:.0f} s per"
             f" measurement; Locate by Name among {OBJECTS:,} objects. Machine load: a load"
             f" average of {load:.1f} before the run, and other processes than this run's took"
             f" {others:.2f} of the {os.cpu_count()} cores during it (on average).", "",
             f"Ceiling: pgbench, {B.CONNS} clients, one durable SERIALIZABLE single-row insert per"
             f" transaction: **{ceiling:,.0f}/s**." if ceiling else "Ceiling: pgbench failed.", "",
             "| store | create ops/s | create p50 / p99 (us) | get ops/s | get p50 / p99 (us) |"
             " locate ops/s | locate p50 / p99 (us) |",
             "|---|---|---|---|---|---|---|"]
    for label, r in rows:
        c, g, l = cell(r["create"]), cell(r["get"]), cell(r["locate"])
        lines.append(f"| {label} | {c[0]} | {c[1]} | {g[0]} | {g[1]} | {l[0]} | {l[1]} |")
    lines += ["", "Round trips (counted by the test postgres::statements_per_operation): a durable"
              " Create is two, the identifier's `nextval` and one statement that writes the"
              " record with its index entries and commits on its own (no BEGIN, no COMMIT, no"
              " read of a record that cannot exist yet); pgbench's insert is three (BEGIN,"
              " INSERT, COMMIT). A Get is one indexed SELECT. Both the identifiers and the"
              " record reads are gathered: the `nextval`s and the records that concurrent"
              " messages ask for while one statement is out are fetched by the next, together"
              " (a read never joins a statement already sent, so it still sees every commit"
              " answered before it asked). Creates that commit while a group of them is being"
              " written are gathered into the next group, one statement and one transaction"
              " for all of them, awaited by their tasks without a thread (a transaction's fixed"
              " cost was most of what a Create cost the database: gathered, its CPU per Create"
              " halved). Nodes, load generator and database share the two cores, so more nodes"
              " add contention, not capacity. A Get on PostgreSQL is"
              " answered on the async worker, like redb's: the record it names is fetched"
              " first, awaited without a thread (reads gathered as above, on a connection"
              " whose I/O runs on the node's runtime), and the Get runs over it; where redb's"
              " read is a memory-mapped page, PostgreSQL's is a round trip and a statement,"
              " and the node has no cache (what one node answered, every node must see at"
              " once)."]
    create_ratios = [r["create"] / r["ceiling"] for r in rounds if r["create"] and r["ceiling"]]
    get_ratios = [r["pg_get"] / r["redb_get"] for r in rounds if r["pg_get"] and r["redb_get"]]
    lines += ["", f"The targets, measured in {len(rounds)} interleaved rounds: in each, pgbench's"
              " ceiling (on a database of its own) then a node's durable Creates, back to back;"
              " Get on redb then Get on PostgreSQL, back to back. The ratio is each round's;"
              " the target row gives their median.", "",
              "| round | pgbench/s | Create on PostgreSQL/s | ratio | Get on redb/s |"
              " Get on PostgreSQL/s | ratio |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rounds):
        f = lambda v: f"{v:,.0f}" if v else "error"
        q = lambda a, b: f"{a / b:.2f}" if a and b else "n/a"
        lines.append(f"| {i + 1} | {f(r['ceiling'])} | {f(r['create'])} |"
                     f" {q(r['create'], r['ceiling'])} | {f(r['redb_get'])} | {f(r['pg_get'])} |"
                     f" {q(r['pg_get'], r['redb_get'])} |")
    lines += ["", "| target | measured (median of the rounds) | goal | |", "|---|---|---|---|"]
    v = median(create_ratios)
    if v is not None:
        lines.append(f"| durable Create on PostgreSQL (1 node) / pgbench | {v:.2f} | >= 0.80 |"
                     f" {'met' if v >= 0.8 else 'missed'} |")
    v = median(get_ratios)
    if v is not None:
        lines.append(f"| Get on PostgreSQL (1 node) / Get on redb | {v:.2f} | >= 0.50 |"
                     f" {'met' if v >= 0.5 else 'missed'} |")
    section = "\n".join(lines) + "\n"
    text = open(B.OUT).read() if os.path.exists(B.OUT) else "# Benchmarks\n"
    if MARK in text:
        start = text.index(MARK)
        rest = text[start + len(MARK):]
        nxt = rest.find("\n## ")
        text = text[:start] + section + (rest[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    open(B.OUT, "w").write(text)
    print(section)


if __name__ == "__main__":
    main()
