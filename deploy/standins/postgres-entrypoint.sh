#!/bin/sh
# The entry point of the postgres:15 stand-in (deploy/standins/README.md):
# like the official image's, it initialises PGDATA on first start with
# POSTGRES_USER as superuser, POSTGRES_PASSWORD (scram-sha-256 over TCP)
# and POSTGRES_DB, then runs postgres as the user postgres.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
export PGDATA
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
as_postgres() { su -s /bin/sh postgres -c "$*"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	printf '%s' "$POSTGRES_PASSWORD" > /tmp/pwfile
	chown postgres /tmp/pwfile
	as_postgres "initdb -D '$PGDATA' -U '$POSTGRES_USER' --pwfile=/tmp/pwfile --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --no-locale" >/dev/null
	rm -f /tmp/pwfile
	echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
	echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
	if [ "$POSTGRES_DB" != postgres ]; then
		as_postgres "pg_ctl -D '$PGDATA' -o '-c listen_addresses=' -w start" >/dev/null
		as_postgres "psql -v ON_ERROR_STOP=1 -U '$POSTGRES_USER' -d postgres -c 'CREATE DATABASE \"$POSTGRES_DB\"'" >/dev/null
		as_postgres "pg_ctl -D '$PGDATA' -m fast -w stop" >/dev/null
	fi
	echo "postgres stand-in: initialised $PGDATA for $POSTGRES_USER, database $POSTGRES_DB"
fi
exec su -s /bin/sh postgres -c "exec postgres -D '$PGDATA' $*"
