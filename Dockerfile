# rlzoo: docker build -t rlzoo . && docker run --rm -v $PWD/logs:/opt/rlzoo/logs rlzoo train --algo ppo --env CartPole-v1
# Set TORCH_SPEC (e.g. a CPU-only wheel index via PIP_INDEX_URL) to choose the PyTorch build.
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
RUN apt-get update && apt-get install -y --no-install-recommends swig build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/rlzoo
COPY . .
RUN pip install --no-cache-dir "${TORCH_SPEC}" && pip install --no-cache-dir -e ".[box2d,mujoco,tuning,tracking,video]"
ENV MPLBACKEND=Agg
ENTRYPOINT ["rlzoo"]
