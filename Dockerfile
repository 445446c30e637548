# salewatch worker image: `docker compose run --rm worker --help` lists the commands.
#
# The image is the repository's source tree (allow-listed in .dockerignore) installed in
# editable mode. Not a wheel on purpose: `salewatch migrate` reads schemas/clickhouse/
# next to the package, and pyproject lists only the top-level package, so a built wheel
# would miss both the SQL files and the streams.* subpackages.
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Runs as this user; the source stays root-owned, read-only to it. Faust keeps local table
# state in the working directory, which docker-compose mounts as a volume.
RUN groupadd --system --gid 10001 salewatch \
    && useradd --system --uid 10001 --gid salewatch --no-create-home salewatch \
    && mkdir -p /var/lib/salewatch \
    && chown salewatch:salewatch /var/lib/salewatch

WORKDIR /app

# Dependencies first, against an empty package, so that code changes reuse this layer.
COPY pyproject.toml ./
RUN mkdir streams && touch streams/__init__.py && pip install --editable .

COPY schemas ./schemas
COPY streams ./streams

USER 10001:10001
WORKDIR /var/lib/salewatch
ENV SALEWATCH_STATE_DIR=/var/lib/salewatch

ENTRYPOINT ["salewatch"]
CMD ["--help"]
