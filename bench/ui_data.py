"""The data of the UI benchmark (``bench/ui.py``): flows, runs and steps written in bulk.

:func:`fill` writes, through SQLAlchemy Core's multi-row inserts on the hub's own tables
(:mod:`hub.db.models`) and account functions (:mod:`hub.db.accounts`), into a migrated
database that no hub is using yet:

- ``flows`` flows (1,000) of four shapes, each with one published version whose document
  is a valid flow: *notify* (manual trigger, one ``data.set`` step), *sync* (a schedule,
  ``data.set`` then ``flow.noop``), *order* (a webhook: a ``for_each`` over the order's
  lines, then a total) and *reminder* (a webhook, a one-day ``flow.delay``, then a
  ``data.set``); some disabled;
- ``runs`` runs (100,000) spread over the last ``days`` days, newest a minute ago, shared
  unevenly between the flows (a Zipf-like law: the busiest flow has thousands of runs, the
  quietest a handful); about 88% succeeded, 9.5% failed (the last step failing, some after a
  second attempt), 2% cancelled, and a reminder's runs of the last day waiting on their
  delay (due a day later: nothing of the data wakes up while the benchmark runs);
- their steps, two per run on average (200,000 for 100,000 runs): rows as the engine writes
  them (keys, items with ``item_index`` and their ``state``, attempts, inputs, outputs,
  errors, times), each run's trigger data varying (orders with lines and customers,
  schedule ticks, form posts);
- one run of a ``bulk-import`` flow with exactly ``big_run_steps`` (500) step rows: a fetch,
  a ``for_each`` over 497 items and a report;
- a person (owner of ``default``) with a password, who signs in to the pages.

Nothing here runs the engine: the rows are what a hub that ran these flows would hold.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, text

from hub.db import accounts
from hub.db.models import flow_versions, flows, runs, steps

WORKSPACE = "default"
EMAIL = "bench@example.com"
PASSWORD = "bench-password-1234"
CHUNK = 5_000  # rows a multi-row insert statement batch carries
MINUTE = 60_000_000  # microseconds
DAY = 24 * 60 * MINUTE
CUSTOMERS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov")
CITIES = ("Lyon", "Porto", "Gdańsk", "Leeds", "Tartu", "Bilbao", "Aarhus", "Graz")
SKUS = tuple(f"SKU-{n:04d}" for n in range(40))
ERRORS = (
    "HTTP 503 from https://api.example.com/orders: Service Unavailable",
    "timed out after 30 s",
    "KeyError: 'email' in trigger.body",
    "HTTP 429 Too Many Requests (retry after 20 s)",
    "connection refused: db.internal:5432",
)


@dataclasses.dataclass
class Filled:
    """What :func:`fill` wrote, and the rows the benchmark asks the pages for."""

    flows: int
    runs: int
    steps: int
    busiest_flow: str  # the flow with the most runs (the list filtered by flow)
    big_run: str  # the run of big_run_steps steps
    big_run_steps: int
    deep_cursor: tuple[int, str]  # (created_at, id) of a run 90% down the list
    seconds: float


def shape_of(index: int) -> str:
    """A flow's shape by its position: 30% notify, 35% sync, 20% order, 15% reminder."""
    return ("notify", "sync", "order", "reminder")[[0, 0, 0, 1, 1, 1, 1, 2, 2, 3][index % 10] % 4]


def flow_document(flow_id: str, name: str, shape: str) -> dict[str, Any]:
    """A valid flow document of ``shape``."""
    if shape == "notify":
        return {
            "id": flow_id,
            "name": name,
            "trigger": {"type": "manual"},
            "steps": [
                {"id": "send", "action": "data.set", "input": {"value": "{{ trigger.message }}"}}
            ],
        }
    if shape == "sync":
        return {
            "id": flow_id,
            "name": name,
            "trigger": {"type": "schedule", "config": {"cron": "*/15 * * * *"}},
            "steps": [
                {"id": "fetch", "action": "data.set", "input": {"value": {"page": 1}}},
                {"id": "store", "action": "flow.noop", "input": {"rows": "{{ steps.fetch }}"}},
            ],
        }
    if shape == "order":
        return {
            "id": flow_id,
            "name": name,
            "trigger": {"type": "webhook", "config": {"methods": ["POST"]}},
            "steps": [
                {
                    "id": "lines",
                    "action": "data.set",
                    "for_each": "{{ trigger.body.lines }}",
                    "input": {"value": {"sku": "{{ item.sku }}", "qty": "{{ item.quantity }}"}},
                },
                {
                    "id": "total",
                    "action": "data.set",
                    "input": {"value": "{{ steps.lines.output | length }}"},
                },
            ],
        }
    return {
        "id": flow_id,
        "name": name,
        "trigger": {"type": "webhook", "config": {"methods": ["POST"]}},
        "steps": [
            {"id": "wait", "action": "flow.delay", "input": {"seconds": 86400}},
            {"id": "remind", "action": "data.set", "input": {"value": "{{ trigger.body }}"}},
        ],
    }


TRIGGER_TYPES = {"notify": "manual", "sync": "schedule", "order": "webhook", "reminder": "webhook"}


def run_id_at(created_at: int, rng: random.Random) -> str:
    """A run id as the engine makes them (hub.engine.runs.new_run_id), at ``created_at``."""
    return f"{created_at // 1000:012x}{rng.getrandbits(80):020x}"


def trigger_data(shape: str, rng: random.Random, n: int) -> Any:
    """A run's trigger data: an order, a schedule tick, a form post, a reminder."""
    if shape == "order":
        lines = [
            {
                "sku": rng.choice(SKUS),
                "quantity": rng.randint(1, 9),
                "unit_price": rng.randint(1, 400),
            }
            for _ in range(rng.choice((1, 1, 2, 2, 3)))
        ]
        return {
            "body": {
                "order_id": f"ORD-{n:07d}",
                "customer": {"name": rng.choice(CUSTOMERS), "city": rng.choice(CITIES)},
                "lines": lines,
            },
            "headers": {"content-type": "application/json", "user-agent": "shop/4.2"},
        }
    if shape == "sync":
        return {"scheduled_for": "2026-12-01T00:15:00Z", "tick": n}
    if shape == "reminder":
        return {"body": {"email": f"user{n}@example.com", "subject": "Your invoice is due"}}
    return {"message": f"Hello from run {n}", "by": rng.choice(CUSTOMERS)}


class Steps:
    """Step rows of one run, with the times the engine would have given them."""

    def __init__(self, run_id: str, start: int, rng: random.Random) -> None:
        self.run_id = run_id
        self.now = start
        self.rng = rng
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        step_id: str,
        status: str = "done",
        *,
        key: str = "",
        item_index: int | None = None,
        attempt: int = 1,
        input: Any = None,
        output: Any = None,
        error: Any = None,
        state: Any = None,
        items_left: int | None = None,
        due_at: int | None = None,
        took: int | None = None,
    ) -> None:
        started = self.now + self.rng.randint(100, 900)
        finished = (
            None if status == "waiting" else started + (took or self.rng.randint(200, 40_000))
        )
        self.rows.append(
            {
                "run_id": self.run_id,
                "key": key or step_id,
                "step_id": step_id,
                "item_index": item_index,
                "attempt": attempt,
                "status": status,
                "due_at": due_at,
                "submitted_at": self.now,
                "resubmissions": 0,
                "lease_owner": None,
                "lease_expires_at": None,
                "input": input,
                "output": output,
                "error": error,
                "state": state,
                "items_left": items_left,
                "created_at": self.now,
                "started_at": started,
                "finished_at": finished,
            }
        )
        if finished is not None:
            self.now = finished


def run_rows(
    shape: str, status: str, run_id: str, created_at: int, trigger: Any, rng: random.Random
) -> tuple[list[dict[str, Any]], Any, Any, int | None]:
    """A run's step rows, its output and error, and when it finished (None: not yet)."""
    s = Steps(run_id, created_at, rng)
    failing = status == "failed"
    cancelled = status == "cancelled"
    error = None

    def fail(
        step_id: str, *, key: str = "", item_index: int | None = None, state: Any = None
    ) -> Any:
        message = rng.choice(ERRORS)
        attempts = 2 if rng.random() < 0.3 else 1
        for attempt in range(1, attempts + 1):
            s.add(
                step_id,
                "failed",
                key=key,
                item_index=item_index,
                attempt=attempt,
                input={"value": "…"},
                error={"message": message, "kind": "action", "attempt": attempt},
                state=state,
            )
        return {"message": message, "kind": "action", "attempt": attempts, "step": key or step_id}

    output: Any = None
    if shape == "notify":
        if failing:
            error = fail("send")
        elif cancelled:
            s.add("send", "cancelled", input={"value": trigger["message"]})
        else:
            s.add("send", input={"value": trigger["message"]}, output=trigger["message"])
            output = trigger["message"]
    elif shape == "sync":
        rows = rng.randint(0, 250)
        s.add("fetch", input={"value": {"page": 1}}, output={"page": 1, "rows": rows})
        if failing:
            error = fail("store")
        elif cancelled:
            s.add("store", "cancelled", input={"rows": {"page": 1, "rows": rows}})
        else:
            s.add("store", input={"rows": {"page": 1, "rows": rows}}, output={"rows": rows})
            output = {"stored": rows}
    elif shape == "order":
        lines = trigger["body"]["lines"]
        parent_at = len(s.rows)
        s.add("lines", output=None, items_left=0)
        outputs = []
        for i, line in enumerate(lines):
            value = {"sku": line["sku"], "qty": line["quantity"]}
            if failing and i == len(lines) - 1:
                error = fail("lines", key=f"lines[{i}]", item_index=i, state={"item": line})
                break
            s.add(
                "lines",
                key=f"lines[{i}]",
                item_index=i,
                input={"value": value},
                output=value,
                state={"item": line},
            )
            outputs.append(value)
        parent = s.rows[parent_at]
        parent["finished_at"] = s.now
        if failing:
            parent["status"] = "failed"
        elif cancelled:
            s.add("total", "cancelled", input={"value": len(outputs)})
        else:
            parent["output"] = outputs
            s.add("total", input={"value": len(outputs)}, output=len(outputs))
            output = {"order_id": trigger["body"]["order_id"], "lines": len(outputs)}
    else:  # reminder
        until = created_at + DAY
        if status == "waiting":
            s.add(
                "wait",
                "waiting",
                input={"seconds": 86400},
                state={"until": until / 1e6},
                due_at=until,
            )
        else:
            s.add("wait", input={"seconds": 86400}, state={"until": until / 1e6}, took=DAY)
            if failing:
                error = fail("remind")
            elif cancelled:
                s.add("remind", "cancelled", input={"value": trigger["body"]})
            else:
                s.add("remind", input={"value": trigger["body"]}, output=trigger["body"])
                output = trigger["body"]
    if cancelled:
        error = {"message": "cancelled", "kind": "cancelled"}
    finished = None if status == "waiting" else s.now
    return s.rows, output, error, finished


def big_run(run_id: str, created_at: int, items: int, rng: random.Random) -> list[dict[str, Any]]:
    """The step rows of one ``bulk-import`` run: fetch, a for_each of ``items``, report."""
    s = Steps(run_id, created_at, rng)
    records = [
        {"id": n, "email": f"contact{n}@example.com", "city": rng.choice(CITIES)}
        for n in range(items)
    ]
    s.add("fetch", input={"value": {"source": "crm"}}, output={"count": items})
    parent_at = len(s.rows)
    s.add("import", items_left=0)
    for i, record in enumerate(records):
        s.add(
            "import",
            key=f"import[{i}]",
            item_index=i,
            input={"value": record},
            output={"imported": record["id"]},
            state={"item": record},
            took=rng.randint(2_000, 15_000),
        )
    s.rows[parent_at]["finished_at"] = s.now
    s.rows[parent_at]["output"] = [{"imported": r["id"]} for r in records]
    s.add("report", input={"value": items}, output={"imported": items})
    return s.rows


def chunks(rows: list[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def write(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Multi-row inserts of ``rows`` (SQLAlchemy's executemany: batched VALUES lists)."""
    for part in chunks(rows):
        conn.execute(insert(table), part)


def fill(
    engine: Engine,
    *,
    n_flows: int = 1_000,
    n_runs: int = 100_000,
    days: int = 30,
    big_run_steps: int = 500,
    password_hash: str = "",
    seed: int = 15,
) -> Filled:
    """Write the benchmark's data (see the module's docstring) in one transaction."""
    started = time.perf_counter()
    rng = random.Random(seed)
    now = time.time_ns() // 1000
    newest = now - MINUTE
    oldest = newest - days * DAY
    flow_rows, version_rows, shapes = [], [], []
    for i in range(n_flows):
        shape = shape_of(i)
        flow_id = f"{shape}-{i:04d}"
        name = f"{shape.title()} {rng.choice(CITIES)} #{i}"
        created = oldest - rng.randint(1, 90) * DAY
        flow_rows.append(
            {
                "workspace_id": WORKSPACE,
                "id": flow_id,
                "name": name,
                "enabled": rng.random() > 0.08,
                "trigger_type": TRIGGER_TYPES[shape],
                "published_version": 1,
                "latest_version": 1,
                "created_at": created,
                "updated_at": created,
            }
        )
        version_rows.append(
            {
                "workspace_id": WORKSPACE,
                "flow_id": flow_id,
                "version": 1,
                "document": flow_document(flow_id, name, shape),
                "source": "",
                "checksum": uuid.uuid4().hex,
                "author": EMAIL,
                "message": "bench",
                "created_at": created,
            }
        )
        shapes.append((flow_id, shape))
    big_flow = "bulk-import"
    flow_rows.append(
        {
            **flow_rows[0],
            "id": big_flow,
            "name": "Bulk import of CRM contacts",
            "enabled": True,
            "trigger_type": "manual",
        }
    )
    version_rows.append(
        {
            **version_rows[0],
            "flow_id": big_flow,
            "document": {
                "id": big_flow,
                "name": "Bulk import",
                "steps": [
                    {"id": "fetch", "action": "data.set", "input": {"value": {}}},
                    {
                        "id": "import",
                        "action": "data.set",
                        "for_each": "{{ steps.fetch.output.records }}",
                        "input": {"value": "{{ item }}"},
                    },
                    {"id": "report", "action": "data.set", "input": {"value": 1}},
                ],
            },
        }
    )

    # Runs per flow: Zipf-like weights over a shuffled order of the flows.
    order = list(range(n_flows))
    rng.shuffle(order)
    weights = [0.0] * n_flows
    for rank, index in enumerate(order):
        weights[index] = 1.0 / (rank + 1) ** 0.9
    picks = rng.choices(range(n_flows), weights=weights, k=n_runs)
    times = sorted(rng.randint(oldest, newest) for _ in range(n_runs))
    run_rows_all: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for n, (pick, created_at) in enumerate(zip(picks, times, strict=True)):
        flow_id, shape = shapes[pick]
        counts[flow_id] = counts.get(flow_id, 0) + 1
        roll = rng.random()
        status = "succeeded" if roll < 0.88 else "failed" if roll < 0.975 else "cancelled"
        if shape == "reminder" and created_at > newest - DAY and status == "succeeded":
            status = "waiting"
        run_id = run_id_at(created_at, rng)
        trigger = trigger_data(shape, rng, n)
        rows, output, error, finished = run_rows(shape, status, run_id, created_at, trigger, rng)
        step_rows.extend(rows)
        run_rows_all.append(
            {
                "id": run_id,
                "workspace_id": WORKSPACE,
                "flow_id": flow_id,
                "flow_version": 1,
                "status": "running" if status == "waiting" else status,
                "trigger_type": TRIGGER_TYPES[shape],
                "trigger": trigger,
                "output": output,
                "error": error,
                "parent_run_id": None,
                "parent_step_key": None,
                "depth": 0,
                "created_at": created_at,
                "started_at": created_at,
                "finished_at": finished,
            }
        )
    big_at = newest - 3 * 60 * MINUTE
    big_id = run_id_at(big_at, rng)
    big_steps = big_run(big_id, big_at, big_run_steps - 3, rng)
    step_rows.extend(big_steps)
    run_rows_all.append(
        {
            **run_rows_all[0],
            "id": big_id,
            "flow_id": big_flow,
            "status": "succeeded",
            "trigger_type": "manual",
            "trigger": {"source": "crm", "segment": "all contacts"},
            "output": {"imported": big_run_steps - 3},
            "error": None,
            "created_at": big_at,
            "started_at": big_at,
            "finished_at": big_steps[-1]["finished_at"],
        }
    )
    deep = sorted(run_rows_all, key=lambda r: (r["created_at"], r["id"]), reverse=True)[
        int(len(run_rows_all) * 0.9)
    ]
    with engine.begin() as conn:
        accounts.ensure_workspace(conn, WORKSPACE)
        user = accounts.user_by_email(conn, EMAIL) or accounts.create_user(
            conn, EMAIL, name="Bench", password_hash=password_hash
        )
        accounts.set_membership(conn, WORKSPACE, user["id"], "owner")
        write(conn, flows, flow_rows)
        write(conn, flow_versions, version_rows)
        write(conn, runs, run_rows_all)
        write(conn, steps, step_rows)
    if engine.dialect.name == "postgresql":
        # What autovacuum does within minutes of such inserts (statistics, the visibility
        # map): done now, so that it does not run in the middle of the measurements.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) runs, steps, flows, flow_versions"))
    return Filled(
        flows=len(flow_rows),
        runs=len(run_rows_all),
        steps=len(step_rows),
        busiest_flow=max(counts, key=lambda f: counts[f]),
        big_run=big_id,
        big_run_steps=len(big_steps),
        deep_cursor=(deep["created_at"], deep["id"]),
        seconds=time.perf_counter() - started,
    )
