# Image for the AWS Batch steps of TrainFlow (train_gpu on a GPU queue; the other steps can use
# it too). Python 3.11 + the repository's pinned stack (requirements.txt, then the --no-deps
# overrides, exactly as setup.sh does), with torch swapped for its CUDA build.
#
# CUDA 11.8 + cuDNN 8 is what TensorFlow 2.12 (Merlin 23.8) is built against; the torch CUDA
# wheel brings its own CUDA runtime libraries, so both work on the same driver (>= 525).
#
#   docker build -t reclab-gpu:$(git rev-parse --short HEAD) .
#   docker tag/push to ECR, then see docs/aws_batch.md.
#
# Not built or run in this repository's CI (no Docker daemon, no GPU, no network there).
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04

ARG DEBIAN_FRONTEND=noninteractive
# PyTorch wheel index for the CUDA build of the torch version pinned in
# requirements-overrides.txt; change it if that version is published for another CUDA.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126

RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common ca-certificates \
        curl git build-essential openjdk-17-jre-headless \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
    && rm -rf /var/lib/apt/lists/*

# Metaflow's Batch bootstrap runs `python` and needs boto3 on it: make the venv the default.
ENV VIRTUAL_ENV=/opt/reclab \
    PATH=/opt/reclab/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    METAFLOW_USER=reclab
RUN python3.11 -m venv $VIRTUAL_ENV

WORKDIR /opt/reclab-build
COPY requirements.txt requirements-overrides.txt ./
# Same two steps as setup.sh (pip 23.2.1 installs merlin-models' sdist), then torch's CUDA
# build (with its nvidia-* runtime wheels) in place of the CPU wheel.
RUN python -m pip install --no-cache-dir --disable-pip-version-check "pip==23.2.1" \
    && python -m pip install --no-cache-dir --disable-pip-version-check -r requirements.txt \
    && python -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        -r requirements-overrides.txt \
    && python -m pip uninstall -y torch \
    && python -m pip install --no-cache-dir --disable-pip-version-check \
        --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple \
        "$(grep -E '^torch==' requirements-overrides.txt)" \
    && python -c "import metaflow, boto3, torch, tensorflow, nvtabular; print(metaflow.__version__)"

# The flow code is NOT baked in: Metaflow ships it as the code package with every task.
WORKDIR /
