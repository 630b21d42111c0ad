#!/bin/sh
# Entry point of the nas image: hand secret files to the programs that read them, then run the
# command (`nas ...`, `ray ...`, `optuna-dashboard ...`).
#
# Secrets stay in files (compose mounts them under /run/secrets); nothing secret is in the image
# or in `docker inspect`. The storage URL carries no password, e.g.
# postgresql+psycopg://nas@postgres:5432/nas, and libpq (psycopg) takes it from PGPASSWORD.
# Ray reads its token file itself: RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH=/run/secrets/...
set -eu

if [ -n "${PGPASSWORD_FILE:-}" ]; then
    if [ ! -r "$PGPASSWORD_FILE" ]; then
        echo "nas-entrypoint: PGPASSWORD_FILE=$PGPASSWORD_FILE is not readable;" \
            "create it (see docker/secrets/README.md)" >&2
        exit 2
    fi
    PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
    export PGPASSWORD
fi

if [ "${RAY_AUTH_MODE:-}" = token ] && [ -n "${RAY_AUTH_TOKEN_PATH:-}" ] \
    && [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
    echo "nas-entrypoint: RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH is missing or empty;" \
        "create it with: openssl rand -hex 32 > docker/secrets/ray_auth_token.txt" >&2
    exit 2
fi

exec "$@"
