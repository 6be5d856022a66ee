#!/bin/sh
# One role and one database per iomflow service; run by the postgres image's entrypoint
# (mounted at /docker-entrypoint-initdb.d) once, when the data volume is empty.
#
# Each service's role owns its database and nothing else; other roles cannot connect to it
# (CONNECT is revoked from PUBLIC). Passwords come from <SERVICE>_DB_PASSWORD variables
# (deploy/compose.yaml passes them; see deploy/.env.example). Changing a password later:
#   ALTER ROLE routes PASSWORD '...';  — the script does not run again on a non-empty volume.
#
# Usable against any PostgreSQL too (a managed one, say), as a superuser or a role with
# CREATEROLE and CREATEDB:
#   PGHOST=... PGUSER=... REGISTRIES_DB_PASSWORD=... (etc.) sh deploy/postgres/init-databases.sh
set -eu

SERVICES="registries diagnostics routes monitoring"

password_of() {
    printenv "$(echo "$1" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD" || true
}

# Every password first: nothing is created unless all four are there.
for service in $SERVICES; do
    if [ -z "$(password_of "$service")" ]; then
        var="$(echo "$service" | tr '[:lower:]' '[:upper:]')_DB_PASSWORD"
        echo "init-databases: $var is not set; no role is created without a password" >&2
        exit 1
    fi
done

for service in $SERVICES; do
    password="$(password_of "$service")"
    echo "init-databases: role and database $service"
    # psql variables (:"name" quoted identifier, :'password' quoted literal) keep the
    # password out of the command line and safe whatever characters it holds.
    psql -v ON_ERROR_STOP=1 --no-psqlrc \
        --username "${POSTGRES_USER:-${PGUSER:-postgres}}" --dbname "${POSTGRES_DB:-postgres}" \
        -v name="$service" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name')
\gexec
ALTER ROLE :"name" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name')
\gexec
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
GRANT ALL ON DATABASE :"name" TO :"name";
SQL
done
