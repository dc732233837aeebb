#!/usr/bin/env bash
# Builds the real Dockerfile and starts the real docker-compose.yml with
# podman, as a user would with Docker: checks the image (non-root, version
# labels, CA certificates, the healthcheck), brings the stack up on a
# generated bucket, waits for healthy, logs in to the UI, checks that every
# closed month and the feature store were loaded, takes the stack down and up
# again and checks that nothing was lost or run again. Exits 0 only when all
# holds; says what failed otherwise. CI runs it after `go test ./...`.
#
# Needs podman, podman-compose, runc, busybox-static, curl, psql and Go; the
# base images are stand-ins built here (deploy/standins/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
project=millracetest
version=test
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"

step() { echo "container-test: $*"; }
fail() {
	echo "container-test: FAIL: $*" >&2
	podman logs --tail 40 "${project}_orchestrator_1" >&2 2>&1 || true
	exit 1
}

# podman on a machine without systemd: cgroupfs, runc, no ulimits, events
# logged to a file. The stack runs on compose's own network, as it does in
# production (service names resolve through podman's dnsname plugin).
export CONTAINERS_CONF="$work/containers.conf"
printf '[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\nevents_logger = "file"\n[containers]\ndefault_ulimits = []\n' >"$CONTAINERS_CONF"

# The compose file publishes 5432 and 8082 on the host.
for port in 5432 8082; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "container-test: port $port is in use here; the compose stack publishes it" >&2
		exit 1
	fi
done
export TEST_BUCKET="$work/bucket" MILLRACE_VERSION="$version" MILLRACE_COMMIT="$commit"
compose() { podman-compose -p "$project" -f docker-compose.yml -f deploy/compose.test.yml "$@" >>"$work/compose.log" 2>&1; }
cleanup() {
	compose down -v || true
	rm -rf "$work"
}
trap cleanup EXIT
db_url="postgres://admin:admin@127.0.0.1:5432/companydata"
sql() { psql "$db_url" -tAX -c "$1"; }

step "stand-in base images"
deploy/standins/build.sh

step "build the Dockerfile"
started=$(date +%s)
podman build --pull=never --format docker --network host \
	-v "$(go env GOMODCACHE)":/go/pkg/mod -v "$(go env GOCACHE)":/root/.cache/go-build \
	--build-arg VERSION="$version" --build-arg COMMIT="$commit" -t "millrace:$version" . >"$work/build.log" 2>&1 ||
	{ tail -30 "$work/build.log" >&2; fail "podman build of the Dockerfile"; }
step "built in $(($(date +%s) - started)) s"

step "check the image"
user="$(podman image inspect "millrace:$version" --format '{{.Config.User}}')"
case "$user" in "" | root | 0 | 0:* | root:*) fail "the image runs as root (User=\"$user\")" ;; esac
[ "$(podman image inspect "millrace:$version" --format '{{index .Config.Labels "org.opencontainers.image.version"}}')" = "$version" ] ||
	fail "label org.opencontainers.image.version is not $version"
[ "$(podman image inspect "millrace:$version" --format '{{index .Config.Labels "org.opencontainers.image.revision"}}')" = "$commit" ] ||
	fail "label org.opencontainers.image.revision is not $commit"
podman image inspect "millrace:$version" --format '{{.Config.Healthcheck.Test}}' | grep -q "millrace healthcheck" ||
	fail "no HEALTHCHECK running millrace healthcheck"
ctr="$(podman create "millrace:$version")"
podman export "$ctr" | tar -t >"$work/files"
podman rm "$ctr" >/dev/null
grep -qx 'etc/ssl/certs/ca-certificates.crt' "$work/files" || fail "no CA certificates in the image (S3 over TLS would fail)"
podman run --rm "millrace:$version" version 2>/dev/null | grep -q "millrace $version" || fail "millrace version in the image"

step "a generated bucket"
last="$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)"
go build -o "$work/millrace" ./cmd/millrace
"$work/millrace" gen --out "$TEST_BUCKET" --customers 2000 --sales-per-month 300 --from 2020-01 --to "$last" >/dev/null
chmod -R a+rX "$TEST_BUCKET"
months="$(find "$TEST_BUCKET/sales" -name sales.csv | wc -l)"
sales_rows=$(($(find "$TEST_BUCKET/sales" -name sales.csv -exec cat {} + | wc -l) - months))

# wait_healthy: until the orchestrator's healthcheck passes, run by podman
# inside the container (no systemd here to run it on a timer).
wait_healthy() {
	local deadline=$(($(date +%s) + 240))
	until podman healthcheck run "${project}_orchestrator_1" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "the orchestrator was not healthy within 240 s"
		sleep 1
	done
}

step "compose up"
started=$(date +%s)
compose up -d || fail "podman-compose up (see $work/compose.log)"
wait_healthy
step "healthy $(($(date +%s) - started)) s after up"

step "log in to the UI"
base="http://localhost:8082"
code="$(curl -s -o /dev/null -w '%{http_code}' -c "$work/cookies" -d username=admin -d password=admin "$base/login")"
[ "$code" = 303 ] || fail "POST /login answered $code, want 303"
code="$(curl -s -o "$work/home.html" -w '%{http_code}' -b "$work/cookies" "$base/")"
[ "$code" = 200 ] && grep -q load_sales_data "$work/home.html" || fail "the home page answered $code"

step "wait for every closed month ($months) and the feature store"
deadline=$(($(date +%s) + 300))
until [ "$(sql "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND state = 'succeeded'" 2>/dev/null)" = "$months" ] &&
	[ "$(sql "SELECT count(*) FROM millrace.partitions WHERE pipeline = 'process_data' AND state = 'succeeded'" 2>/dev/null)" = 1 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "not every month and the feature store loaded within 300 s: $(sql "SELECT string_agg(pipeline || ' ' || state || ' ' || n, ', ') FROM (SELECT pipeline, state, count(*) n FROM millrace.partitions GROUP BY 1, 2) x")"
	sleep 1
done
step "loaded $(($(date +%s) - started)) s after up"
[ "$(sql "SELECT count(*) FROM public.sales")" = "$sales_rows" ] || fail "public.sales has $(sql "SELECT count(*) FROM public.sales") rows, the files $sales_rows"
[ "$(sql "SELECT count(*) FROM public.feature_store")" -gt 0 ] || fail "public.feature_store is empty"
snapshot() {
	sql "SELECT (SELECT count(*) FROM millrace.runs) || ' ' || (SELECT count(*) FROM public.sales) || ' ' || (SELECT sum(value) FROM public.sales) || ' ' || (SELECT count(*) FROM public.feature_store) || ' ' || (SELECT count(*) FROM millrace.partitions WHERE state = 'succeeded')"
}
before="$(snapshot)"

step "down and up again"
compose down || fail "podman-compose down"
compose up -d || fail "podman-compose up again"
wait_healthy
# The first scheduler pass runs at start: give it time to queue anything.
for _ in $(seq 10); do
	after="$(snapshot)"
	[ "$after" = "$before" ] || fail "after down and up: runs, sales, sum, features, succeeded = $after, want $before"
	sleep 1
done

echo "container-test: ok: image millrace:$version (user $user), $months months and the feature store loaded, $(echo "$before" | cut -d' ' -f1) runs, nothing lost or run again after down and up"
