"""The Docker API's swarm-mode routes (swarm, nodes, services, tasks, secrets, configs), answered
as a dockerd that is not part of a swarm answers them: 503 and dockerd's words.

rongqi has no swarm mode. A client that probes (docker-py's leave_swarm(force=True), which
takes 503 as "not in a swarm"; `docker node ls`; compose looking for secrets) then gets the
answer it knows instead of a 404 "page not found", which it would take for a broken daemon.
"""

from __future__ import annotations

from rongqi.serve.app import HTTPError, Request, Response, route

# dockerd's errNoSwarm and errSwarmNotManager texts (daemon/cluster/errors.go).
NOT_IN_SWARM = "This node is not part of a swarm"
NOT_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
               'join" to connect this node to swarm and try again.')
NO_SWARM_MODE = "rongqi has no swarm mode: docker swarm init and join are not supported"


def _not_manager(req: Request) -> Response:
    raise HTTPError(503, NOT_MANAGER)


def _not_in_swarm(req: Request) -> Response:
    raise HTTPError(503, NOT_IN_SWARM)


def _no_swarm_mode(req: Request) -> Response:
    raise HTTPError(501, NO_SWARM_MODE)


route("POST", "/swarm/leave")(_not_in_swarm)
route("GET", "/swarm/unlockkey")(_not_in_swarm)
route("POST", "/swarm/unlock")(_not_in_swarm)
route("POST", "/swarm/init")(_no_swarm_mode)
route("POST", "/swarm/join")(_no_swarm_mode)
for _method, _pattern in (
        ("GET", "/swarm"), ("POST", "/swarm/update"),
        ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"),
        ("POST", "/nodes/{id}/update"),
        ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
        ("DELETE", "/services/{id}"), ("POST", "/services/{id}/update"),
        ("GET", "/services/{id}/logs"),
        ("GET", "/tasks"), ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/logs"),
        ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"),
        ("DELETE", "/secrets/{id}"), ("POST", "/secrets/{id}/update"),
        ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"),
        ("DELETE", "/configs/{id}"), ("POST", "/configs/{id}/update")):
    route(_method, _pattern)(_not_manager)
