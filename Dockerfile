FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot bot
COPY connectors connectors
COPY crm_core crm_core
COPY scheduler scheduler
COPY nlp nlp
COPY config config
COPY scrm scrm
RUN pip install --no-cache-dir .
EXPOSE 8080
CMD ["scrm", "serve", "--host", "0.0.0.0", "--port", "8080"]
