# One image for the three roles in compose.yaml: migrate, api and worker.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY domain ./domain
COPY infra ./infra
COPY templates ./templates
COPY schema.graphql ./
# Editable, so the templates/ folder beside the packages is where Herald looks.
RUN pip install -e . && useradd --system --no-create-home herald
USER herald

EXPOSE 8000
CMD ["herald", "serve", "--host", "0.0.0.0", "--port", "8000"]
