# One image for every app; the command chooses the app (see README "Deploying"):
#   docker build -t privacy-backend .
#   docker run privacy-backend gateway        # or identity, orders, consent, transfer
#   docker run privacy-backend migrate        # the migration step, once per release
# The build stage has the compilers and builds the virtualenv; the runtime stage gets only
# the virtualenv and the source, and runs as an unprivileged user.

FROM python:3.12-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential=12.9 \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY kit ./kit
COPY gateway ./gateway
COPY services ./services
# The dependencies only: the source runs from /app, where the policy files sit beside it.
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes signature-privacy-backend

FROM python:3.12-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 /var/lib/privacy/consent-state
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY kit ./kit
COPY gateway ./gateway
COPY services ./services
COPY policy ./policy
COPY deploy/entrypoint.sh /usr/local/bin/entrypoint
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["gateway"]
