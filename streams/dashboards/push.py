"""Create or update the dashboards in a Grafana, idempotently by uid.

Client: ``grafana-api`` 1.0.3 (``grafana_api.grafana_face.GrafanaFace``). It works on
Python 3.11 and covers the two calls needed here (folders, ``POST /api/dashboards/db``), so
its maintained fork ``grafana-client`` is not needed; grafana-api ships no type hints, so
this module is the only place that touches it.

What a push does, and nothing more:

1. ``GET /api/folders/<folder_uid>``; on 404 ``POST /api/folders`` with that uid and title;
2. per dashboard, ``POST /api/dashboards/db`` with ``{"dashboard": <JSON, id null>,
   "folderUid": <folder_uid>, "overwrite": true, "message": ...}`` — Grafana matches the
   dashboard by ``uid``: created the first time, replaced afterwards, whatever its version.

Authentication: a service-account token, sent as ``Authorization: Bearer <token>``.
Dashboards provisioned from files (docker-compose) cannot be overwritten through the API;
push is for other Grafana instances.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from grafana_api.grafana_api import GrafanaClientError, GrafanaException  # type: ignore[import-untyped]
from grafana_api.grafana_face import GrafanaFace  # type: ignore[import-untyped]

DEFAULT_FOLDER_UID = "salewatch"
DEFAULT_FOLDER_TITLE = "Salewatch"
PUSH_MESSAGE = "salewatch dashboards push (generated from streams/dashboards)"


class PushError(Exception):
    """Grafana refused a call; the message names the call and Grafana's answer."""


@dataclass(frozen=True)
class Pushed:
    uid: str
    title: str
    status: str  # Grafana's answer, "success"
    version: int
    url: str


def grafana_client(grafana_url: str, token: str, timeout_s: float = 10.0) -> Any:
    """A ``GrafanaFace`` for ``http(s)://host[:port][/prefix]``."""
    parts = urlsplit(grafana_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--grafana-url {grafana_url!r}: expected http(s)://host[:port]")
    prefix = parts.path.strip("/")
    return GrafanaFace(
        auth=token,
        host=parts.hostname,
        port=parts.port,
        url_path_prefix=f"{prefix}/" if prefix else "",
        protocol=parts.scheme,
        timeout=timeout_s,
    )


def _call(what: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except GrafanaException as exc:
        raise PushError(f"{what}: HTTP {exc.status_code}: {exc.message}") from None
    except OSError as exc:  # connection refused, DNS, timeout (requests' errors are OSErrors)
        raise PushError(f"{what}: {exc}") from None


def ensure_folder(client: Any, uid: str, title: str) -> None:
    """Create the folder ``uid`` unless it exists (its title is left as it is)."""
    try:
        client.folder.get_folder(uid)
        return
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise PushError(f"GET folder {uid}: HTTP {exc.status_code}: {exc.message}") from None
    except OSError as exc:
        raise PushError(f"GET folder {uid}: {exc}") from None
    _call(f"create folder {uid}", lambda: client.folder.create_folder(title, uid))


def _saver(client: Any, body: dict[str, Any]) -> Callable[[], Any]:
    return lambda: client.dashboard.update_dashboard(body)


def push(
    client: Any,
    boards: Sequence[Mapping[str, Any]],
    folder_uid: str = DEFAULT_FOLDER_UID,
    folder_title: str = DEFAULT_FOLDER_TITLE,
) -> list[Pushed]:
    """Put every dashboard JSON of ``boards`` into the folder; returns Grafana's answers."""
    ensure_folder(client, folder_uid, folder_title)
    results = []
    for board in boards:
        body = {
            # id null: match by uid, never by a numeric id from another Grafana
            "dashboard": {**board, "id": None},
            "folderUid": folder_uid,
            "overwrite": True,
            "message": PUSH_MESSAGE,
        }
        answer = _call(f"save dashboard {board['uid']}", _saver(client, body))
        results.append(
            Pushed(
                uid=str(answer.get("uid", board["uid"])),
                title=str(board.get("title", "")),
                status=str(answer.get("status", "")),
                version=int(answer.get("version", 0)),
                url=str(answer.get("url", "")),
            )
        )
    return results
