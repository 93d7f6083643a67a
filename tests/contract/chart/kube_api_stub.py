"""A minimal Kubernetes API on a free loopback port, for `helm template --dry-run=server`: enough for the chart's
`lookup` calls to see objects of a release that is already installed.

It serves discovery (/version, /api, /apis and one APIResourceList per group version) for the kinds it is given,
GETs of the objects it holds, and 404 for everything else (so Helm sees every other object as absent).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from certa.testing.redis_server import free_port


def plural(kind: str) -> str:
    lower = kind.lower()
    return lower[:-1] + "ies" if lower.endswith("y") else lower + "s"


def resource_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural(kind)}/{name}"


class KubeApiStub:
    def __init__(self, kinds: Iterable[tuple[str, str]], objects: Iterable[dict]) -> None:
        """`kinds`: the (apiVersion, kind) pairs to announce; `objects`: namespaced objects GET returns."""
        by_version: dict[str, set[str]] = {}
        for api_version, kind in kinds:
            by_version.setdefault(api_version, set()).add(kind)
        groups = sorted(version for version in by_version if "/" in version)
        self.routes: dict[str, dict] = {
            "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0"},
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/apis": {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": version.split("/")[0],
                        "versions": [{"groupVersion": version, "version": version.split("/")[1]}],
                        "preferredVersion": {"groupVersion": version, "version": version.split("/")[1]},
                    }
                    for version in groups
                ],
            },
        }
        for api_version, version_kinds in by_version.items():
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            self.routes[prefix] = {
                "kind": "APIResourceList",
                "groupVersion": api_version,
                "resources": [
                    {
                        "name": plural(kind),
                        "singularName": kind.lower(),
                        "namespaced": True,
                        "kind": kind,
                        "verbs": ["get", "list"],
                    }
                    for kind in sorted(version_kinds)
                ],
            }
        for obj in objects:
            metadata = obj["metadata"]
            self.routes[resource_path(obj["apiVersion"], obj["kind"], metadata["namespace"], metadata["name"])] = obj
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = routes.get(self.path.split("?", 1)[0])
                status = 200 if found is not None else 404
                body = json.dumps(
                    found
                    if found is not None
                    else {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> KubeApiStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
