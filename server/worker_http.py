"""The worker's own HTTP endpoint (``council worker --metrics-port``): ``/metrics`` and
``/healthz`` (Valkey answers a ping, NATS accepts a connection; 503 otherwise), for probes and
Prometheus. A daemon thread beside the worker's event loop; it shares no state with it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import valkey
from prometheus_client import make_wsgi_app

from council_agents.core.settings import Settings
from council_agents.events.publisher import connect_once
from council_agents.storage.saver import client_url


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Probes every few seconds are not worth a log line."""


def health(settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Whether this worker's Valkey and NATS answer."""
    report: dict[str, Any] = {}
    try:
        client = valkey.Valkey.from_url(
            client_url(settings.storage.valkey_url or ""), socket_timeout=2
        )
        report["valkey"] = {"ok": bool(client.ping())}
        client.close()  # type: ignore[no-untyped-call]  # valkey 6.2: close() is unannotated
    except Exception as e:  # noqa: BLE001 - reported, not raised
        report["valkey"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}

    async def nats_ok() -> None:
        nc = await connect_once(
            settings.events.nats_url or "", settings.events.nats_creds, timeout=3
        )
        await nc.close()

    try:
        asyncio.run(nats_ok())
        report["nats"] = {"ok": True}
    except Exception as e:  # noqa: BLE001 - reported, not raised
        report["nats"] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    ok = all(v["ok"] for v in report.values())
    return ok, {"ok": ok, **report}


def start(settings: Settings, host: str, port: int) -> WSGIServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` from a daemon thread."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok, report = health(settings)
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json")],
            )
            return [json.dumps(report).encode()]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    server = make_server(host, port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="worker-http", daemon=True).start()
    return server
