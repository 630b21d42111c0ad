#!/bin/sh
# Create the secret files docker/compose.yaml reads, once; an existing file is kept.
#   postgres_password.txt  the password of the `nas` PostgreSQL role
#   ray_auth_token.txt     the Ray cluster's token (RAY_AUTH_MODE=token)
# The folder is closed to other users of the host (700); the files are world-readable (644) so
# that the containers' unprivileged users can read the bind-mounted copies.
set -eu
cd "$(dirname "$0")"
chmod 700 .
for name in postgres_password ray_auth_token; do
    if [ -s "$name.txt" ]; then
        echo "kept    docker/secrets/$name.txt"
    else
        openssl rand -hex 32 > "$name.txt"
        echo "created docker/secrets/$name.txt"
    fi
    chmod 644 "$name.txt"
done
