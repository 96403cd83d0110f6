"""A tiny service task for tests: a key-value HTTP server on one host, graded by the
ServiceGrader skeleton under one pause, in seconds (kv-replicated's grader is the large
user of the same parts). Its solutions: ``robust`` (the server) and ``broken`` (exits 3)."""

from __future__ import annotations

from pathlib import Path

from tinytask import tiny_task

SERVER = r"""
import http.server, os
STORE = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        v = STORE.get(self.path)
        self.send_response(404 if v is None else 200)
        body = (v or b"") + os.environ["SUFFIX"].encode()
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_PUT(self):
        STORE[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""

GRADER = """
from pathlib import Path

from infragym.checkers import Availability, LostWrites
from infragym.grading import Contract, Functional, Phases, ServiceGrader, env_from_spec
from infragym.nemesis import balanced_schedule
from infragym.rubric import Criterion, Rubric, gate
from infragym.tasks import load_task
from infragym.workload import KVGenerator, Mix, Stream

START_CMD = ("/bin/sh", "/srv/app/start.sh")


async def t_put_get(p):
    await p.put_visible("n1", "fx", "hello " + p.tag)


SERVICE = ServiceGrader(
    contract=Contract(START_CMD, 8080, env_from_spec(load_task(Path(__file__).parent).spec),
                      listen_s=5.0),
    functional=Functional([("put-get", t_put_get)], prefix="/kv/", ready_path="r-{tag}"),
    workload=lambda urls, seed, s: [Stream(KVGenerator(urls, seed=seed, mix=Mix(1, 1), keys=3),
                                           rate=20, duration=s, timeout=0.5)],
    checkers=lambda budget: [LostWrites(), Availability(slo=0.9, scope="steady", name="serving")],
    rubric=Rubric([gate("functional"), gate("serving", min_judged=5),
                   Criterion("lost-writes", min_judged=1)]),
    phases=Phases(tail_s=0.5, settle_s=0.2, listen_s=5.0, check_budget_s=5.0),
)


async def grade(ctx):
    cluster = ctx.cluster(1)
    schedule = balanced_schedule(ctx.seed, cluster.names, kinds=("pause",), rounds=1,
                                 first_at=1.0, duration=(0.5, 0.5))
    return await SERVICE.grade(ctx, cluster, schedule)


def recheck(history):
    return SERVICE.recheck(history)
"""

CONTRACT = '\n[contract.env]\nPORT = "8080"\nSUFFIX = ""\nNODE = "{node_id}"\n'


def service_task(root: Path, grader: str = GRADER) -> Path:
    d = tiny_task(root, name="tiny-service", dev_hosts=0, grader=grader)
    with (d / "task.toml").open("a") as f:
        f.write(CONTRACT)
    for ws, start in (("robust", f"exec python3 -c '{SERVER}'"), ("broken", "echo no; exit 3")):
        (d / "solutions" / ws).mkdir(exist_ok=True)
        (d / "solutions" / ws / "start.sh").write_text(start + "\n")
    (d / "workspace" / "start.sh").write_text("exit 1\n")
    return d
