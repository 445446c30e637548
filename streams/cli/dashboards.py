"""``salewatch dashboards generate | push``: the Grafana dashboards of ``streams.dashboards``.

``generate`` writes ``dashboards/*.json`` and the Grafana alert rules
(``deploy/grafana/provisioning/alerting/salewatch.yml``, ``streams.dashboards.alerting``)
from the code (``--check``: exit 1 if the
committed files differ, for CI). ``push`` creates or updates them in a Grafana by uid
(``streams.dashboards.push``); the token comes from ``--token`` or ``GRAFANA_TOKEN``
(prefer the variable: command lines end up in shell history and ``ps``).

Exit codes: 0 success, 1 failure (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from streams import dashboards
from streams.dashboards import alerting
from streams.dashboards import push as pushing

TOKEN_ENV = "GRAFANA_TOKEN"


def _generate(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    if args.check:
        stale = dashboards.stale_files(out_dir)
        if alerting.is_stale():
            stale.append(str(alerting.ALERTING_FILE))
        if stale:
            print(
                f"salewatch dashboards: out of date in {out_dir}: {', '.join(stale)}; "
                "run `salewatch dashboards generate`",
                file=sys.stderr,
            )
            return 1
        print(f"{len(dashboards.DASHBOARDS)} dashboards in {out_dir} match the code")
        return 0
    for path in [*dashboards.write_all(out_dir), alerting.write()]:
        print(f"wrote {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"salewatch dashboards push: give --token or set {TOKEN_ENV}", file=sys.stderr)
        return 2
    try:
        client = pushing.grafana_client(args.grafana_url, token, timeout_s=args.timeout)
        boards = [dashboards.to_json(build()) for build in dashboards.DASHBOARDS.values()]
        results = pushing.push(client, boards, args.folder_uid, args.folder_title)
    except ValueError as exc:
        print(f"salewatch dashboards push: {exc}", file=sys.stderr)
        return 2
    except pushing.PushError as exc:
        print(f"salewatch dashboards push: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.status:8} {r.uid:24} version {r.version:<4} {r.url}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dashboards`` with ``generate`` and ``push`` to the ``salewatch`` parser."""
    parser = subparsers.add_parser("dashboards", help="generate or push the Grafana dashboards")
    commands = parser.add_subparsers(dest="dashboards_command", required=True)

    generate = commands.add_parser("generate", help="write dashboards/*.json from the code")
    generate.add_argument(
        "--out",
        type=Path,
        default=dashboards.DEFAULT_OUT_DIR,
        metavar="DIR",
        help="output directory (default: the repository's dashboards/)",
    )
    generate.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the files are stale"
    )
    generate.set_defaults(func=_generate)

    push = commands.add_parser("push", help="create or update the dashboards in Grafana")
    push.add_argument(
        "--grafana-url", required=True, metavar="URL", help="e.g. http://127.0.0.1:3000"
    )
    push.add_argument("--token", default="", help=f"service-account token (default: ${TOKEN_ENV})")
    push.add_argument("--folder-uid", default=pushing.DEFAULT_FOLDER_UID)
    push.add_argument("--folder-title", default=pushing.DEFAULT_FOLDER_TITLE)
    push.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    push.set_defaults(func=_push)
