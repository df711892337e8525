#!/usr/bin/env bash
# Starts the PostgreSQL the tests use: Debian's server on 127.0.0.1:5432, user `postgres`, trust
# auth on loopback only. Idempotent: a server already answering there is left as it is, a
# stopped cluster is started, a missing one is created. Called by tests/run.sh after apt has
# installed `postgresql`; machines no longer start one for us.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
login() { psql -h 127.0.0.1 -U postgres -d postgres -w -Atqc 'select 1' >/dev/null 2>&1; }

if ready && login; then
    echo "PostgreSQL: already answering on 127.0.0.1:5432"
    exit 0
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
[ -n "$version" ] || { echo "PostgreSQL: no server installed (apt-get install postgresql)" >&2; exit 1; }

# Debian's package creates `main` on install; a machine whose cluster was removed gets a new one.
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    as_root pg_createcluster --port 5432 "$version" main >/dev/null
fi

# Trust on loopback for the test user: the tests connect as `postgres` without a password.
# Our lines go first (pg_hba is first match), marked so a second run does not add them again.
hba="/etc/postgresql/$version/main/pg_hba.conf"
marker="# correlator tests: trust on loopback"
if ! as_root grep -qF "$marker" "$hba"; then
    as_root sh -c "{ printf '%s\n%s\n%s\n' '$marker' \
        'host all all 127.0.0.1/32 trust' 'host all all ::1/128 trust'; cat '$hba'; } > '$hba.new' \
        && chown --reference='$hba' '$hba.new' && chmod --reference='$hba' '$hba.new' \
        && mv '$hba.new' '$hba'"
fi
as_root sed -i -E "s/^#?port = [0-9]+/port = 5432/; s/^#?listen_addresses = .*/listen_addresses = 'localhost'/" \
    "/etc/postgresql/$version/main/postgresql.conf"

# No systemd on these machines: pg_ctlcluster starts the server directly.
if pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
else
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do ready && break; sleep 1; done
ready || {
    echo "PostgreSQL: not reachable on 127.0.0.1:5432 after start; see /var/log/postgresql/" >&2
    exit 1
}
login || {
    echo "PostgreSQL: answering, but user postgres cannot log in without a password" >&2
    exit 1
}
echo "PostgreSQL $version: started on 127.0.0.1:5432"
