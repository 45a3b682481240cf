# syntax=docker/dockerfile:1
# One image for every role of a studyd cluster: api, worker, proxy, dashboard.
# The entrypoint is `studyd`; the compose file picks the command (serve, worker, proxy).
#
# GPU by default: PyPI's Linux x86_64 torch wheel is the CUDA build and carries its own CUDA
# runtime, so the host needs only the NVIDIA driver and the NVIDIA Container Toolkit.
# Another build, e.g. CPU-only or a given CUDA version, comes from PyTorch's own index:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t studyd .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t studyd .
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TORCH_INDEX_URL=https://pypi.org/simple
# Keep in step with constraints.txt (the same public version; a local label like +cpu is fine).
ARG TORCH_VERSION=2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/studyd \
    PATH=/opt/studyd/bin:$PATH

RUN python -m venv /opt/studyd

WORKDIR /src
COPY constraints.txt ./
# torch first, from the chosen index. PyPI stays an extra index for torch's own dependencies,
# which constraints.txt pins; `torch==2.13.0` also matches 2.13.0+cpu / +cu128 (PEP 440).
RUN pip install -c constraints.txt \
        --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple \
        "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md ./
COPY studyd ./studyd
COPY api ./api
COPY models ./models
COPY storage ./storage
RUN pip install -c constraints.txt . && rm -rf /src

# Never run as root: a numeric uid so Kubernetes' runAsNonRoot can verify it.
RUN useradd --create-home --uid 10001 --user-group studyd \
    && mkdir -p /data \
    && chown studyd:studyd /data
USER 10001:10001
WORKDIR /data
ENV STUDYD_DATA_DIR=/data

# 8000: the API (studyd serve); 13000: the gRPC storage proxy (studyd proxy).
EXPOSE 8000 13000
ENTRYPOINT ["studyd"]
CMD ["--help"]
