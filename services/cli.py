"""The `rhizome` command line (its contract: docs/operations.md and `rhizome --help`).

Exit codes: 0 success, 2 bad input (one line naming the field), 1 anything else.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import orjson

from experiments.privacy import safe_participant_id
from experiments.settings import KAFKA_NODE_COUNTS, PRIVATE_UMASK, Settings, load_settings
from experiments.specs import MAX_SPEC_BYTES, SpecError, parse_pilot_spec
from experiments.store import Store, StoreError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class BadInput(ValueError):
    """Input the user can fix; printed as one line, exit code 2."""


def _emit(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def _store(settings: Settings) -> Store:
    store = Store(settings.database_url)
    store.migrate()
    return store


# --- commands ----------------------------------------------------------------------------------


def cmd_analyze(args: argparse.Namespace, _settings: Settings) -> int:
    from experiments.results import is_results_document, request_of
    from experiments.stats import analyze_dict, load_json

    raw = sys.stdin.buffer.read() if args.request == "-" else _read(args.request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"request: not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    try:
        doc = load_json(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"request: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if is_results_document(doc):
        doc = request_of(doc)
    _emit(analyze_dict(doc))
    return 0


def cmd_pilot_apply(args: argparse.Namespace, settings: Settings) -> int:
    # One byte past the bound is enough for the parser to refuse a file too large, whatever its size.
    spec = parse_pilot_spec(_read(args.file, MAX_SPEC_BYTES + 1), Path(args.file).name)
    store = _store(settings)
    result = store.apply_pilot(spec, actor=args.actor, reason=args.reason or "", force=args.force, start=not args.draft)
    if args.json:
        _emit({"pilot": result.pilot, "api_key": result.api_key, "experiments": list(result.experiments)})
        return 0
    verb = "created" if result.created else "updated" if result.changes else "unchanged"
    print(f"pilot {result.pilot} {verb}; experiments: {', '.join(result.experiments) or 'none'}")
    for c in result.changes:
        scope = f"{c.experiment_key}." if c.experiment_key else ""
        print(f"  {'forced ' if c.forced else ''}change {scope}{c.field}: {c.old!r} -> {c.new!r}")
    if result.api_key:
        print(f"API key (shown once, keep it secret): {result.api_key}")
    return 0


def cmd_pilot_list(_args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    for p in store.pilots():
        statuses = {e.spec.key: e.status for e in store.experiments(p.key)}
        exps = ", ".join(f"{k} ({v})" for k, v in statuses.items()) or "no experiments"
        print(f"{p.key}\t{p.stage}\t{p.name}\t{exps}")
    return 0


def cmd_experiment_status(args: argparse.Namespace, settings: Settings) -> int:
    target = {"start": "running", "stop": "stopped", "decide": "decided"}[args.action]
    stored = _store(settings).set_status(args.experiment, target, actor=args.actor, reason=args.reason or "")  # type: ignore[arg-type]
    print(f"experiment {args.experiment} is {stored.status}")
    return 0


def cmd_results(args: argparse.Namespace, settings: Settings) -> int:
    from experiments.results import experiment_results

    doc = experiment_results(_store(settings), args.experiment, args.segment or "")
    if args.json:
        _emit(doc)
        return 0
    print(f"{doc['experiment']} (pilot {doc['pilot']}) as of {doc['as_of']}")
    for v, d in doc["variants"].items():
        print(f"  {v}: {d['units']} participants")
    for row in doc["analysis"]["comparisons"]:
        if row["error"]:
            print(f"  {row['metric']} {row['variant']}: {row['error']}")
        else:
            print(
                f"  {row['metric']} {row['variant']}: effect {row['effect']:+.4f} "
                f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]"
            )
    return 0


def cmd_assign(args: argparse.Namespace, settings: Settings) -> int:
    from services.assignment.service import UnknownExperiment, assign_from_store

    settings = settings.ensure_secret()
    assert settings.secret is not None
    pid = safe_participant_id(args.participant, settings.secret)
    try:
        assignment = assign_from_store(_store(settings), args.experiment, pid)
    except UnknownExperiment:
        raise BadInput(f"experiment == {args.experiment!r}, no such experiment") from None
    if args.json:
        _emit({"experiment": args.experiment, "variant": assignment.variant})
    else:
        print(assignment.variant if assignment.variant is not None else "(none: outside the allocation)")
    return 0


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from services.erasure import erase_participant
    from services.ingest.publisher import Publisher
    from streams.events import Topics, ensure_settings_topics

    settings = settings.ensure_secret()
    assert settings.secret is not None
    pid = safe_participant_id(args.participant, settings.secret)
    ensure_settings_topics(settings)
    publisher = Publisher(settings.kafka_bootstrap, client_id="rhizome-erase")
    try:
        done = erase_participant(_store(settings), publisher, Topics(settings.namespace), pid, requested_by=args.actor)
    finally:
        publisher.close()
    doc = {
        "participant": pid,
        "rows_deleted": done.rows_deleted,
        "tombstone_published": True,
        "at": done.at.isoformat(),
    }
    if args.json:
        _emit(doc)
    else:
        print(
            f"erased {pid}: {done.rows_deleted} stored rows deleted; erasure request published to {done.topic}, "
            "the workers now forget the participant and recount without them"
        )
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    if args.action == "create":
        print(store.create_api_key(args.target, args.label or ""))
    elif args.action == "revoke":
        if not str(args.target).isdigit():
            raise BadInput(f"id == {args.target!r}, must be the number `rhizome keys list` shows")
        store.revoke_api_key(int(args.target))
        print(f"key {args.target} revoked")
    else:
        for k in store.api_keys(args.target):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            print(f"{k.id}\t{k.pilot_key}\t{k.prefix}…\t{state}\t{k.label}")
    return 0


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    from experiments.accounts import add_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
    add_user(_store(settings), args.username, password, args.role)
    print(f"user {args.username} ({args.role}) saved")
    return 0


def cmd_users_list(_args: argparse.Namespace, settings: Settings) -> int:
    from experiments.console_setup import console_users

    for user in console_users(_store(settings)):
        print(f"{user.username}\t{user.role}\t{'disabled' if user.disabled else 'active'}")
    return 0


def cmd_users_lockouts(_args: argparse.Namespace, settings: Settings) -> int:
    from experiments.accounts import sign_in_failures

    remembered = sign_in_failures(_store(settings), datetime.now(UTC))
    if not remembered:
        print("no failed sign-in remembered")
    for f in remembered:
        state = "locked" if f.locked else "waiting" if f.retry_at else "counting"
        until = f" until {f.retry_at:%Y-%m-%d %H:%M:%S} UTC" if f.retry_at else ""
        print(
            f"{f.scope}\t{f.subject}\t{f.failures} failures in a row, the last at "
            f"{f.last_failure_at:%Y-%m-%d %H:%M:%S} UTC\t{state}{until}"
        )
    return 0


def cmd_users_unlock(args: argparse.Namespace, settings: Settings) -> int:
    from experiments.accounts import account_subject, address_subject, clear_failures

    if (args.username is None) == (args.address is None):
        raise BadInput("username: give an account name or --address ADDRESS (one of them)")
    if args.address is not None:
        scope, subject = "address", address_subject(args.address)
    else:
        scope, subject = "account", account_subject(args.username)
    cleared = clear_failures(_store(settings), scope, subject)  # type: ignore[arg-type]
    print(f"{scope} {subject}: " + ("failed sign-ins cleared" if cleared else "no failed sign-in remembered"))
    return 0


def cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    print(f"database at revision {store.schema_revision()}")
    return 0


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    from services.broker import LocalBroker, fetch_jars, running_nodes

    if args.action == "fetch":
        print(f"Kafka jars in {fetch_jars(quiet=False)}")
        return 0
    # stop and status act on what runs from the state directory, whatever its size.
    broker = LocalBroker(settings, args.nodes or running_nodes(settings) or settings.kafka_nodes)
    count = len(broker.nodes)
    if args.node is not None and args.action != "stop":
        raise BadInput(f"--node == {args.node}, only `rhizome broker stop` takes one node")
    if args.action == "start":
        took = broker.start()
        what = "broker" if count == 1 else f"cluster of {count} nodes"
        print(f"{what} running at {broker.bootstrap} (ready in {took:.1f} s)")
        if count != settings.kafka_nodes and settings.local_broker:
            print(f"set RHIZOME_KAFKA_NODES={count} for the other commands (ingest, worker, up) to use it")
    elif args.action == "stop":
        if args.node is not None:
            if args.node not in [n.node_id for n in broker.nodes]:
                raise BadInput(f"--node == {args.node}, the local Kafka has nodes 1 to {count}")
            stopped = broker.stop_node(args.node)
            print(f"node {args.node} stopped" if stopped else f"node {args.node} was not running")
        else:
            print(("broker" if count == 1 else "cluster") + (" stopped" if broker.stop() else " was not running"))
    else:
        status = broker.status()
        print(status.describe())
        return 0 if status.reachable else 1
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.app import run_worker

    _store(settings).close()
    run_worker(settings, loglevel=args.loglevel)
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from services.ingest.app import run_ingest

    settings = replace(
        settings, ingest_host=args.host or settings.ingest_host, ingest_port=args.port or settings.ingest_port
    )
    _store(settings).close()
    run_ingest(settings)
    return 0


def cmd_portal(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from services.portal.app import run_portal

    settings = replace(
        settings, portal_host=args.host or settings.portal_host, portal_port=args.port or settings.portal_port
    )
    _store(settings).close()
    run_portal(settings)
    return 0


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from services.platform import UI_APP

    host = args.host or settings.console_host
    port = args.port or settings.console_port
    _store(settings).close()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(UI_APP),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--global.developmentMode", "false", "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    # Become streamlit, so SIGTERM from a supervisor (rhizome up, Docker, Kubernetes) reaches it.
    os.execv(sys.executable, cmd)


def cmd_up(args: argparse.Namespace, settings: Settings, demo: bool = False) -> int:
    from services.platform import Platform, handle_termination

    handle_termination()
    platform = Platform(settings)
    try:
        platform.start(console=not args.no_console)
        if demo:
            from services.simulator.demo import demo_admin, start_demo

            sim = start_demo(settings, platform.ingest_url, days=args.days, rate=args.rate, say=print)
            user, password = demo_admin(settings)
            print(f"console  sign in as {user} / {password}")
            print(
                f"\nRhizome demo is running. Open the console: {platform.console_url}  "
                f"the citizens' portal: {platform.portal_url}  (Ctrl-C stops everything)"
            )
            try:
                platform.wait()
            finally:
                sim.stop()
        else:
            print(
                f"\nRhizome is up. Console: {platform.console_url}  Ingest: {platform.ingest_url}  "
                f"Portal: {platform.portal_url}  (Ctrl-C stops)"
            )
            platform.wait()
    except KeyboardInterrupt:
        print("\nstopping…")
    finally:
        platform.stop()
        print("stopped")
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from services.platform import handle_termination
    from services.simulator.demo import run_simulator

    handle_termination()
    run_simulator(settings, args.ingest, days=args.days, rate=args.rate, duration=args.duration)
    return 0


# --- parsing -----------------------------------------------------------------------------------


def _read(path: str, limit: int = -1) -> bytes:
    """Returns the file's bytes, at most `limit` of them when it is given."""
    try:
        with Path(path).open("rb") as file:
            return file.read(limit)
    except FileNotFoundError:
        raise BadInput(f"file == {path!r}, no such file") from None
    except IsADirectoryError:
        raise BadInput(f"file == {path!r}, is a directory") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rhizome", description="Rhizome: living-lab experimentation platform.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[..., int], help: str, parent: Any = sub) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    for name, demo in (("demo", True), ("up", False)):
        sp = add(
            name,
            (lambda a, s, d=demo: cmd_up(a, s, demo=d)),
            "up plus the simulator feeding the demo pilots" if demo else "the whole platform on one machine",
        )
        sp.add_argument("--no-console", action="store_true", help="do not start the Streamlit console")
        if demo:
            sp.add_argument("--days", type=int, default=21, help="days of history to simulate first (default 21)")
            sp.add_argument("--rate", type=float, default=20.0, help="live events per second (default 20)")

    sp = add("broker", cmd_broker, "the local Apache Kafka broker (KRaft): one node, or a cluster of three")
    sp.add_argument("action", choices=["start", "stop", "status", "fetch"])
    sp.add_argument(
        "--nodes",
        type=int,
        choices=KAFKA_NODE_COUNTS,
        help="start: 1 node, or a cluster of 3 (default: RHIZOME_KAFKA_NODES, or what is running)",
    )
    sp.add_argument("--node", type=int, help="stop: only this node of the cluster (1, 2 or 3)")
    sp = add("worker", cmd_worker, "one faust worker (run several for more throughput)")
    sp.add_argument("--loglevel", default="warn", choices=["crit", "error", "warn", "info", "debug"])
    sp = add("ingest", cmd_ingest, "the HTTP ingest and assignment service")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp = add("portal", cmd_portal, "the citizens' portal (default 127.0.0.1:8600)")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp = add("console", cmd_console, "the Streamlit console")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)

    pilot = sub.add_parser("pilot", help="pilots: apply a spec file, list").add_subparsers(dest="action", required=True)
    sp = add("apply", cmd_pilot_apply, "create or update a pilot and its experiments from a spec file", pilot)
    sp.add_argument("file")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--force", action="store_true", help="allow changes to a running experiment's locked plan")
    sp.add_argument("--reason", help="why (recorded with every change; required with --force)")
    sp.add_argument("--draft", action="store_true", help="create new experiments as drafts, not running")
    sp.add_argument("--actor", default=_whoami())
    add("list", cmd_pilot_list, "list pilots and their experiments", pilot)

    sp = add("experiment", cmd_experiment_status, "move an experiment along draft → running → stopped → decided")
    sp.add_argument("action", choices=["start", "stop", "decide"])
    sp.add_argument("experiment")
    sp.add_argument("--reason")
    sp.add_argument("--actor", default=_whoami())

    sp = add("results", cmd_results, "an experiment's per-variant aggregates and their analysis")
    sp.add_argument("experiment")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--segment", help='a segment such as "district:north" (default: everyone)')
    sp = add("analyze", cmd_analyze, "the stats engine on sufficient statistics (REQUEST.json or -)")
    sp.add_argument("request")
    sp = add("assign", cmd_assign, "the variant a participant gets")
    sp.add_argument("experiment")
    sp.add_argument("participant")
    sp.add_argument("--json", action="store_true")
    sp = add("erase", cmd_erase, "remove every trace of a participant and publish the erasure")
    sp.add_argument("participant")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--actor", default=_whoami())

    sp = add("keys", cmd_keys, "pilot API keys: create PILOT, revoke ID, list [PILOT]")
    sp.add_argument("action", choices=["create", "revoke", "list"])
    sp.add_argument("target", nargs="?")
    sp.add_argument("--label")
    users = sub.add_parser("users", help="console accounts").add_subparsers(dest="action", required=True)
    sp = add("add", cmd_users_add, "add or update a console account (password read from the terminal)", users)
    sp.add_argument("username")
    sp.add_argument("--role", choices=["lab", "board", "admin"], required=True)
    sp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add("list", cmd_users_list, "list console accounts", users)
    add("lockouts", cmd_users_lockouts, "account names and addresses whose failed sign-ins are remembered", users)
    sp = add("unlock", cmd_users_unlock, "clear the failed sign-ins (and so the wait or lockout) of a name", users)
    sp.add_argument("username", nargs="?", help="the account name")
    sp.add_argument("--address", help="clear a client address instead (as `rhizome users lockouts` shows it)")
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    add("upgrade", cmd_db_upgrade, "bring the database schema to the latest migration", db)

    sp = add("simulate", cmd_simulate, "synthetic citizens posting to an ingest API")
    sp.add_argument("--ingest", default=None, help="ingest base URL (default: from settings)")
    sp.add_argument("--days", type=int, default=0)
    sp.add_argument("--rate", type=float, default=20.0)
    sp.add_argument("--duration", type=float, default=None, help="seconds to run (default: until Ctrl-C)")
    return p


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _fail(code: int, message: str) -> NoReturn:
    sys.stderr.write(message.replace("\n", "; ") + "\n")
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever a rhizome process creates (the database, logs, the worker's data, the broker's) is its
    # owner's alone; the children it starts, the broker's JVM among them, inherit the umask.
    os.umask(PRIVATE_UMASK)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        args.ingest = getattr(args, "ingest", None) or f"http://{settings.ingest_host}:{settings.ingest_port}"
        if getattr(args, "command", None) == "keys" and args.action in ("create", "revoke") and not args.target:
            needs = "pilot" if args.action == "create" else "key id"
            raise BadInput(f"target: missing, `rhizome keys {args.action}` needs a {needs}")
        return int(args.fn(args, settings))
    except (BadInput, StoreError, SpecError) as exc:
        _fail(2, str(exc))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Imported only now: the stats package loads scipy and statsmodels, about 1.4 s that every
        # other command, a worker's start-up among them, would otherwise spend for nothing.
        from experiments.stats import RequestError

        if isinstance(exc, RequestError):
            _fail(2, str(exc))
        _fail(1, f"rhizome {getattr(args, 'command', '')}: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
