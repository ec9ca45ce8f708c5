# TaskPilot's container image. Two stages: `build` makes the wheel and a virtual environment with
# exactly requirements/runtime.txt (hash-pinned) plus that wheel; the final stage copies only the
# environment. docs/production.md ("Deploy") has the commands; compose.yaml runs it with PostgreSQL
# and Redis.
#
#   docker build -t taskpilot .
#   docker run --rm --env-file .env taskpilot db upgrade    # migrations: an explicit, one-off command
#   docker run --env-file .env -p 8000:8000 taskpilot       # serves (`taskpilot serve`)
#
# The base is an argument: any Debian-like image with Python 3.11 and its venv module. CI, which
# reaches no image registry, builds a Debian bookworm base with debootstrap (.ci/image-smoke.sh).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# The dependencies first: this layer is reused until requirements/runtime.txt changes. With
# --require-hashes pip also refuses any dependency the lock does not pin.
COPY requirements/runtime.txt /src/requirements/runtime.txt
# pip byte-compiles what it installs: the image's user cannot write __pycache__ under /opt, and
# compiled here the dependencies' bytecode stays in this cached layer.
RUN python3 -m venv /opt/taskpilot \
 && /opt/taskpilot/bin/pip install --require-hashes -r /src/requirements/runtime.txt
COPY pyproject.toml README.md LICENSE /src/
COPY src /src/src
COPY db /src/db
RUN /opt/taskpilot/bin/pip wheel --no-deps --wheel-dir /dist /src \
 && /opt/taskpilot/bin/pip install --no-deps /dist/taskpilot-*.whl \
 && /opt/taskpilot/bin/pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
ENV LANG=C.UTF-8 \
    PATH=/opt/taskpilot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000
# A user without a login shell whose only writable place is /var/lib/taskpilot: attachments land in
# ./var/attachments there unless ATTACHMENT_STORAGE_URL says otherwise (mount a volume on ./var;
# a new named volume takes this directory's owner).
RUN groupadd --gid 10001 taskpilot \
 && useradd --uid 10001 --gid taskpilot --home-dir /var/lib/taskpilot --create-home \
        --shell /usr/sbin/nologin taskpilot \
 && install -d -o taskpilot -g taskpilot /var/lib/taskpilot/var
COPY --from=build /opt/taskpilot /opt/taskpilot
WORKDIR /var/lib/taskpilot
USER taskpilot
EXPOSE 8000
# Python, not curl: the slim image has no curl. /health is liveness (the process answers); /ready
# also needs the database and a free stream slot, which is a load balancer's question.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
# `docker run IMAGE` serves; `docker run IMAGE db upgrade` migrates; any `taskpilot` command works.
ENTRYPOINT ["taskpilot"]
CMD ["serve"]
