#!/usr/bin/env bash
# The container image, end to end, on a machine that reaches no image registry:
#   1. a Debian bookworm base with Python 3.11 from Debian's own packages (debootstrap), cached as a
#      tarball under $TASKPILOT_CI_CACHE, imported with podman;
#   2. the Dockerfile built on it with buildah (daemonless; --isolation chroot, the host's network,
#      the machine's pip configuration and certificates mounted for pip);
#   3. the image run with `buildah run` (podman run cannot set rlimits here) against the machine's
#      PostgreSQL (a scratch database) and Redis, in production mode as compose.yaml runs it:
#      the migration, the start-up line, /health, the image's own HEALTHCHECK command, HEAD /, a token
#      from `taskpilot token`, one chat turn with the offline model, and SIGTERM exiting 0;
#   4. compose.yaml validated (`docker compose config` when an engine's compose plugin is there; else
#      tests/unit/test_compose.py's checks, which `make test` runs).
# Prints the image's size and the build's time. Called by .ci/run; runs alone too (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${TASKPILOT_CI_CACHE:-/var/cache/taskpilot-ci}"
SUITE=bookworm
BASE_PACKAGES="python3.11,python3.11-venv,python3-pip,ca-certificates"
BASE_TAG="$(printf '%s %s' "$SUITE" "$BASE_PACKAGES" | sha256sum | cut -c1-12)"
BASE_TAR="$CACHE/base-$SUITE-$BASE_TAG.tar"
BASE_IMAGE="localhost/taskpilot-ci-base:$SUITE-$BASE_TAG"
IMAGE="localhost/taskpilot-ci:smoke"
# The commands compose.yaml runs: the image's entry point (`taskpilot`) with each service's command.
# tests/unit/test_compose.py checks that these two lines and compose.yaml agree.
MIGRATE=(taskpilot db upgrade)
SERVE=(taskpilot serve)
# compose.yaml's settings for the server that matter here (the rest comes from the image).
WORKERS=2
METRICS_DIR=/tmp/taskpilot-metrics

step() { printf '\n--- image: %s ---\n' "$*"; }

step "tools: debootstrap, buildah, podman (Debian packages)"
missing=()
for tool in debootstrap buildah podman; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  # Another apt-get may hold the lock (CI installs other packages too): wait for it.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}"
fi
buildah --version
podman --version

step "base image: Debian $SUITE + Python 3.11 ($BASE_IMAGE)"
if [ ! -s "$BASE_TAR" ]; then
  # The machine's own Debian mirror, as apt is configured (no address is written down here).
  mirror="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  if [ -z "$mirror" ]; then
    mirror="$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  fi
  [ -n "$mirror" ] || { echo "no Debian mirror found in apt's sources"; exit 1; }
  mkdir -p "$CACHE"
  rootfs="$(mktemp -d)"
  started=$SECONDS
  debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log"; exit 1; }
  # What an image does not need: downloaded packages, package lists, documentation, translations.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.partial" .
  mv "$BASE_TAR.partial" "$BASE_TAR"
  rm -rf "$rootfs" "$rootfs.log"
  echo "debootstrap: $((SECONDS - started)) s, cached as $BASE_TAR"
fi
if ! podman image exists "$BASE_IMAGE"; then
  podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$BASE_TAR" "$BASE_IMAGE" >/dev/null
fi
podman image inspect "$BASE_IMAGE" --format 'base image: {{.Size}} bytes'

step "build the Dockerfile on it (buildah bud)"
mounts=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
[ -f /etc/pip.conf ] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
started=$SECONDS
# --format docker keeps HEALTHCHECK (the OCI format has none); --layers reuses unchanged steps.
buildah bud --isolation chroot --network host --format docker --layers --quiet "${mounts[@]}" \
  --build-arg PYTHON_IMAGE="$BASE_IMAGE" -t "$IMAGE" . >/dev/null
build_seconds=$((SECONDS - started))
size="$(podman image inspect "$IMAGE" --format '{{.Size}}')"
echo "image $IMAGE: $size bytes ($((size / 1000000)) MB), built in ${build_seconds} s"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" = taskpilot ] || { echo "the image runs as root"; exit 1; }

step "run it against PostgreSQL and Redis"
PG_DB="taskpilot_ci_image_$$"
SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG="$(mktemp)"
container=""
server=""
cleanup() {
  if [ -n "$server" ]; then
    # Granian and every worker (a worker outlives a killed main process): this run's port only.
    for pid in $(pgrep -f -- "granian .*--port $PORT " || true); do kill -KILL "$pid" 2>/dev/null || true; done
    kill "$server" 2>/dev/null || true
  fi
  [ -n "$container" ] && buildah rm "$container" >/dev/null 2>&1 || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS ${PG_DB} WITH (FORCE)" >/dev/null 2>&1 || true
  rm -f "$LOG"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE ${PG_DB}"
container="$(buildah from --name "taskpilot-smoke-$$" "$IMAGE")"
# The image's own environment (APP_ENV=production, HOST, PATH) plus what compose.yaml adds.
settings=(
  -e "DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/${PG_DB}"
  -e "REDIS_URL=redis://127.0.0.1:6379/0"
  -e "AUTH_JWT_SECRET=$SECRET"
  -e "WORKERS=$WORKERS"
  -e "PROMETHEUS_MULTIPROC_DIR=$METRICS_DIR"
  -e "HOST=127.0.0.1"
  -e "PORT=$PORT"
)
in_image() { buildah run --isolation chroot --network host "${settings[@]}" "$container" -- "$@"; }

in_image "${MIGRATE[@]}"
tables="$(psql -h 127.0.0.1 -U postgres -d "$PG_DB" -Atc "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('alembic_version', 'tasks', 'chat_threads', 'chat_items')")"
[ "$tables" = 4 ] || { echo "the migration did not create the tables ($tables of 4)"; exit 1; }
echo "migrated: $(psql -h 127.0.0.1 -U postgres -d "$PG_DB" -Atc 'SELECT version_num FROM alembic_version')"

started=$SECONDS
in_image "${SERVE[@]}" >"$LOG" 2>&1 &
server=$!
until curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { cat "$LOG"; echo "the server exited"; exit 1; }
  ((SECONDS - started < 180)) || { cat "$LOG"; echo "no answer on /health in 180 s"; exit 1; }
  sleep 0.5
done
echo "serving after $((SECONDS - started)) s"
grep '"taskpilot.startup"' "$LOG" | python3 -c 'import json, sys; print("start-up line:", json.loads(sys.stdin.readline())["msg"])'
curl -fsS "http://127.0.0.1:$PORT/health" -w '\n'

# The image's HEALTHCHECK command, as an engine would run it inside the container.
healthcheck="$(podman image inspect "$IMAGE" --format '{{json .Config.Healthcheck.Test}}')"
mapfile -t check < <(python3 -c 'import json, sys; t = json.loads(sys.argv[1]); assert t[0] == "CMD", t; print(*t[1:], sep="\n")' "$healthcheck")
in_image "${check[@]}" && echo "HEALTHCHECK passes (${check[*]:0:2} ...)"
[ "$(curl -sS -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$PORT/")" = 200 ] || { echo "HEAD / is not 200"; exit 1; }

TOKEN="$(in_image taskpilot token --user image-smoke)"
reply="$(curl -sS -N "http://127.0.0.1:$PORT/chatkit" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"add a task to buy milk tomorrow"}],"attachments":[],"inference_options":{}}}}')"
grep -q 'Buy milk' <<<"$reply" || { echo "$reply" | tail -5; echo "the chat turn did not add the task"; exit 1; }
# (Read whole, then searched: `curl | grep -q` fails under pipefail when grep stops reading first.)
tasks="$(curl -fsS "http://127.0.0.1:$PORT/api/tasks" -H "Authorization: Bearer $TOKEN")"
grep -q '"title":"Buy milk"' <<<"$tasks" || { echo "$tasks"; echo "the task is not in /api/tasks"; exit 1; }
echo "a chat turn (offline model) added the task"
metrics="$(curl -fsS "http://127.0.0.1:$PORT/metrics")"
grep -q '^taskpilot_chatkit_turn_duration_seconds_count 1.0$' <<<"$metrics" \
  || { grep turn_duration_seconds_count <<<"$metrics"; echo "/metrics (both workers summed) does not count the turn"; exit 1; }

main="$(pgrep -o -f -- "granian .*--port $PORT ")"
kill -TERM "$main"
status=0
wait "$server" || status=$?
server=""
[ "$status" = 0 ] || { tail -20 "$LOG"; echo "SIGTERM: exit status $status, not 0"; exit 1; }
echo "SIGTERM: exit status 0"

step "compose.yaml"
if docker compose version >/dev/null 2>&1; then
  # With .env.example as the .env a deployment copies it to.
  project="$(mktemp -d)"
  cp compose.yaml "$project/" && cp .env.example "$project/.env"
  (cd "$project" && docker compose config --quiet) && echo "docker compose config: valid"
  rm -rf "$project"
else
  echo "no docker compose plugin here: tests/unit/test_compose.py checks compose.yaml (services, commands, volumes)"
fi

step "image: $((size / 1000000)) MB, build ${build_seconds} s"
