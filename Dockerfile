# CPU image with the embedded models (tiny.en; the multilingual base, assembled into /app/cache on
# first use); extra models are mounted at /app/models.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ASR_MODEL_CACHE_DIR=/app/cache
RUN apt-get update && apt-get install -y --no-install-recommends curl libsndfile1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install .[postgres]
COPY config.yaml ./
RUN mkdir -p models cache data && useradd --system --uid 1000 asr && chown -R asr /app
USER asr
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
CMD ["asr-server", "--config", "/app/config.yaml"]
