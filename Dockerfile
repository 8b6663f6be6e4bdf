# The model API image: the packaged bundle behind `mlcd serve`, run as a non-root user.
#
#   podman build --format docker --build-arg MODEL_HASH=... --build-arg GIT_COMMIT=... -t mlcd-model .
#
# BASE_IMAGE builds the virtualenv (it needs python3-venv and pip); RUNTIME_IMAGE
# runs it and needs only the same Python. Both default to the official slim image.
# `mlcd image build` passes local bases where no registry is reachable.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=${BASE_IMAGE}

FROM ${BASE_IMAGE} AS build
COPY deploy/requirements-serve.txt /tmp/requirements.txt
# Hash-pinned from uv.lock; the serve extra has no scikit-learn, pandas, scipy or dvc.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
      --require-hashes -r /tmp/requirements.txt \
 && find /opt/venv -depth -name __pycache__ -type d -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3*/site-packages/pip* /opt/venv/lib/python3*/site-packages/setuptools* \
      /opt/venv/lib/python3*/site-packages/pkg_resources /opt/venv/lib/python3*/site-packages/_distutils_hack \
      /opt/venv/lib/python3*/site-packages/distutils-precedence.pth

FROM ${RUNTIME_IMAGE}
ARG MODEL_HASH=unknown
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="mlcd model API" \
      org.opencontainers.image.description="Packaged model bundle served by mlcd" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      io.mlcd.model-hash="${MODEL_HASH}"
COPY --from=build /opt/venv /opt/venv
COPY src/mlcd /opt/mlcd/mlcd
COPY models/bundle /opt/mlcd/bundle
ENV PATH=/opt/venv/bin:${PATH} \
    MLCD_GIT_COMMIT=${GIT_COMMIT} \
    PYTHONPATH=/opt/mlcd \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user needs no passwd entry and satisfies Kubernetes' runAsNonRoot.
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
ENTRYPOINT ["python3", "-m", "mlcd", "serve", "--bundle", "/opt/mlcd/bundle", "--host", "0.0.0.0", "--port", "8080"]
