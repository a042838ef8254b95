# syntax=docker/dockerfile:1
# The one image of BMT: every service, the operator and the migrations Job run it; the Helm chart
# picks the command (`python -m bmt_user`, ..., `python -m bmt_operator`). No secret is baked in:
# keys, passwords and URLs come from the chart's Secrets and ConfigMaps at run time.
#
#   docker build -t bmt:dev .
#
# Two stages: the build stage has pip's caches and build tools, the runtime stage only the
# installed packages in a virtualenv.
#
# BASE_IMAGE is any Debian-like image with Python 3.11 on PATH as `python` (with venv) and
# groupadd/useradd; `bmt_stack.images` builds one with mmdebstrap where no registry is reachable.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/bmt
ENV PATH=/opt/bmt/bin:$PATH
WORKDIR /src
# Only what `pip install .` needs: the project file, the README it names, and the packages.
COPY pyproject.toml README.md ./
COPY stack/ stack/
COPY services/ services/
COPY operator/ operator/
# A regular (not editable) install without the dev extras; the sandbox gateway stays in the
# package set but is never started by the chart.
RUN pip install --upgrade pip setuptools wheel \
    && pip install . \
    && python -c "import bmt_common, bmt_gateway, bmt_user, bmt_order, bmt_payment, bmt_operator"

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="bmt" \
      org.opencontainers.image.description="BMT cinema ticket-booking platform: services and operator"
ENV PATH=/opt/bmt/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BMT_HOST=0.0.0.0
# A fixed numeric non-root user, so `runAsNonRoot` can be verified by the kubelet.
RUN groupadd --system --gid 10001 bmt \
    && useradd --system --uid 10001 --gid bmt --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin bmt
COPY --from=build /opt/bmt /opt/bmt
USER 10001:10001
WORKDIR /tmp
# Each Deployment overrides the command; this default only says what the image holds.
CMD ["python", "-m", "bmt_gateway"]
