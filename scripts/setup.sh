#!/usr/bin/env bash
# Set up a development machine (Debian, Python 3.11): Debian's Fashion-MNIST package, a virtual
# environment in .venv, the local CPU build of torch 2.13.0 first, then sift-deploy with every extra.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq dataset-fashion-mnist
fi

python_bin="$(command -v python3.11 || command -v python3)"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
# torch first and pinned: anything that lets the resolver choose a newer torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 -e '.[all]'
# tritonserver for `sift-deploy serve`: the nvidia-pytriton wheel carries a real binary, its libraries and the
# Python backend. Its metadata pins numpy<2, so it goes beside the environment (--no-deps --target), where
# sift_deploy/serve/server.py finds it and pip check does not see it.
if [ ! -x .venv/opt/tritonserver/pytriton/tritonserver/bin/tritonserver ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target .venv/opt/tritonserver \
    nvidia-pytriton==0.7.0
fi
.venv/bin/python -m pip check
