# LoRA Land as a container (also usable as a Docker Space on port 7860).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 LORA_LAND_HOST=0.0.0.0 LORA_LAND_PORT=7860 \
    LORA_LAND_CACHE=/data/lora_land
# g++: torch.compile's C++ kernels (the compiled decode step, engine/compiled.py)
RUN apt-get update && apt-get install -y --no-install-recommends make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt .
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir -r requirements.txt
COPY . .
# Prepare the embedded model at build time so the container starts offline.
RUN .venv/bin/python -m lora_land.engine.prepare
EXPOSE 7860
CMD [".venv/bin/python", "app.py"]
