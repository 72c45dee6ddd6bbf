"""moto's server (SQS and DynamoDB) on a free local port, with atomic DynamoDB writes.

moto's server handles each request on its own thread and its backends take no lock. In
DynamoDB two concurrent conditional writes to one item can both pass their condition; real
DynamoDB never allows that, and the worker's idempotent claim depends on it. In SQS a delete
rebuilds the queue's message list from a snapshot, so a concurrent delete or send can be undone
(a deleted message comes back, a sent one is dropped). This launcher serialises DynamoDB
requests, and SQS requests other than ``ReceiveMessage`` (20 s long polls stay concurrent).

``python -m worker.devstack.moto_server --port 0`` prints one JSON line
``{"event": "moto_ready", "url": ..., "port": ...}`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serialise_writes(app: WsgiApp) -> WsgiApp:
    dynamodb, sqs = threading.Lock(), threading.Lock()

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            lock = dynamodb
        elif target.startswith("AmazonSQS.") and target != "AmazonSQS.ReceiveMessage":
            lock = sqs
        else:
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return wrapped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("waitress").setLevel(logging.ERROR)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = serialise_writes(DomainDispatcherApplication(create_backend_app))
    try:
        import waitress.server
    except ImportError:
        return _serve_werkzeug(app, args.host, args.port)
    # waitress keeps HTTP/1.1 connections alive, as AWS does; werkzeug's development server
    # closes every connection after one response, so each client call would pay a new TCP
    # connection (and aiohttp a resolver thread), which is not what production looks like.
    server = waitress.server.create_server(
        app,
        host=args.host,
        port=args.port,
        threads=16,
        ident="moto",
        clear_untrusted_proxy_headers=True,
    )
    port = server.effective_port
    _ready(args.host, int(port))

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def _ready(host: str, port: int) -> None:
    print(
        json.dumps({"event": "moto_ready", "url": f"http://{host}:{port}", "port": port}),
        flush=True,
    )


def _serve_werkzeug(app: WsgiApp, host: str, port: int) -> int:
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    _ready(host, server.server_port)

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
