#!/bin/sh
# The server as a container on an engine host (docs/DEPLOY.md, "The server in a container").
# Needs the images: `make image` (the sandboxes) and `make server-image` (sce-server:latest).
#   ENV_FILE  the server's settings (default /etc/sce/sce.env, from deploy/sce.env.example)
#   NAME      the container's name (default sce)        IMAGE  default sce-server:latest
#
# --network host   serves on SCE_BIND of the host (engines set up by scripts/engine-up have no
#                  bridge network, so -p cannot publish a port there)
# --pid host       the reaper tells live servers from dead ones by their host pid: a restarted
#                  container then removes at once what its dead predecessor left, and judges the
#                  parent cgroups of other servers rightly. In its own pid namespace a server leaves
#                  other servers' sandboxes to their lease (it once removed them as orphans)
# the socket       the engine's API (root on this host: the server is as trusted as the engine)
# /sys/fs/cgroup   with --user 0: exact per-run figures (cpu_ms, memory_peak_bytes) and the OOM
#                  judgement from a parent cgroup, as a server on the host has. Without both, the
#                  server runs as 10001 (add --group-add "$(stat -c %g /var/run/docker.sock)") and
#                  takes figures from the engine's stats API.
# --stop-timeout   SIGTERM drains (notice + grace, 5 + 10 s in sce.env.example) before SIGKILL
set -eu
exec docker run --detach --name "${NAME:-sce}" --restart unless-stopped \
  --network host --pid host --user 0 \
  --volume /var/run/docker.sock:/var/run/docker.sock \
  --volume /sys/fs/cgroup:/sys/fs/cgroup \
  --env-file "${ENV_FILE:-/etc/sce/sce.env}" \
  --stop-timeout 30 \
  "${IMAGE:-sce-server:latest}"
