# syntax=docker/dockerfile:1
#
# sms-worker: one image for `sms-worker run` (the default), `sandbox`, `init`, `enqueue`,
# `status` and `campaign`.
#
#   docker build -t sms-worker:0.1.0 .
#   docker run --rm -e SMS_WORKER_QUEUE_URL=... -e SMS_WORKER_TABLE=... -e AWS_REGION=... sms-worker:0.1.0
#
# Stage 1 builds the project (runtime dependencies only, no test or dev extras) into a
# virtual environment; stage 2 is the same slim base with only that environment copied in.

FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /src
# The build inputs only: pyproject.toml (hatchling reads README.md as the long description),
# the pinned versions, the package.
COPY pyproject.toml README.md constraints.txt ./
COPY worker ./worker
# A non-editable install of the project builds its wheel; constraints.txt pins every runtime
# dependency to the versions the test suite ran with.
RUN pip install --no-cache-dir --constraint constraints.txt . \
    && pip check


FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="sms-worker" \
      org.opencontainers.image.description="Drains an SQS queue of MMS send requests through AWS End User Messaging SMS (SendMediaMessage) and records every outcome in DynamoDB." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}" \
    SMS_WORKER_METRICS_PORT=9102

# A fixed numeric uid/gid so that Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 sms-worker \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin sms-worker

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

# /metrics, /healthz and /readyz of `sms-worker run`. The check asks
# http://127.0.0.1:${SMS_WORKER_METRICS_PORT:-9102}/healthz (exec form, no shell: python reads
# the variable); SMS_WORKER_METRICS_PORT=0 disables the endpoint, and then the check passes.
EXPOSE 9102
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('SMS_WORKER_METRICS_PORT') or '9102'; sys.exit(0 if port == '0' or urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

# On SIGTERM the worker stops receiving, lets in-flight sends finish (SMS_WORKER_SHUTDOWN_GRACE_S,
# 25 s) and flushes its status writes and acks (SMS_WORKER_SHUTDOWN_HARD_S, 5 s): give it at
# least 30 s before SIGKILL (docker stop -t 35, compose stop_grace_period, ECS stopTimeout,
# Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sms-worker"]
CMD ["run"]
