"""The Docker SDK client an engine talks through, made cheap per call.

Two of docker-py's defaults cost CPU on every call, on the server and in the engine, and a run
makes several calls (create, attach, start, remove):

- its Unix-socket adapter keys connection pools by the whole URL, so every call about a new
  container (``/containers/<id>/start``, ``DELETE /containers/<id>``) made a new pool and a new
  connection to the engine, which the engine accepted and served on a fresh goroutine. Here the
  socket has one pool of keep-alive connections; an attach keeps a pool of its own as before,
  because its connection is hijacked for the run's I/O and must never be handed to another call;
- requests consults the environment (proxies, ``.netrc``, CA bundles) on every call. The engine
  is reached exactly as configured, so ``trust_env`` is off: on TCP with TLS that also keeps
  ``REQUESTS_CA_BUNDLE`` from replacing the TLS directory's ``ca.pem``.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.tls
from docker.constants import DEFAULT_NUM_POOLS
from docker.transport.unixconn import UnixHTTPAdapter

SHARED_POOL_KEY = "http+docker://localhost/"  # any URL: a Unix pool's connections go to its socket


class SharedPoolUnixAdapter(UnixHTTPAdapter):  # type: ignore[misc]
    """One keep-alive pool for every call on the socket; a fresh one per attach (hijacked)."""

    def get_connection(self, url: str, proxies: Any = None) -> Any:
        if "/attach" in url:
            return super().get_connection(url, proxies)
        return super().get_connection(SHARED_POOL_KEY, proxies)


def make_api(host: str | None, tls: docker.tls.TLSConfig | None, *, timeout: int, max_pool_size: int) -> Any:
    """An ``APIClient`` for ``host`` (None: the environment's ``DOCKER_HOST`` or the local socket)."""
    if host:
        api = docker.APIClient(base_url=host, tls=tls or False, timeout=timeout, max_pool_size=max_pool_size)
    else:
        api = docker.from_env(timeout=timeout, max_pool_size=max_pool_size).api
    api.trust_env = False
    adapter = getattr(api, "_custom_adapter", None)
    if isinstance(adapter, UnixHTTPAdapter):
        socket_url = "http+unix://" + adapter.socket_path
        shared = SharedPoolUnixAdapter(socket_url, timeout, DEFAULT_NUM_POOLS, max_pool_size)
        api._custom_adapter = shared
        api.mount("http+docker://", shared)
    return api
