#!/usr/bin/env bash
# Builds the stand-in base images of README.md with podman, from this
# machine's Go, busybox-static and PostgreSQL 15, tagged under the names the
# Dockerfile and docker-compose.yml use. For tests only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# copy_libs ROOT FILE...: copies the shared libraries that FILE needs (and
# the dynamic loader) into ROOT at the same paths.
copy_libs() {
	local root=$1
	shift
	ldd "$@" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | sort -u | while read -r lib; do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

# busybox_into ROOT: a shell and the few tools the images' scripts use.
busybox_into() {
	local root=$1
	mkdir -p "$root/bin"
	cp "$(command -v busybox)" "$root/bin/busybox"
	for a in sh ls cat echo mkdir chown chmod rm su env printf; do ln -sf busybox "$root/bin/$a"; done
}

# etc_into ROOT USER UID HOME: passwd and group with root and USER.
etc_into() {
	local root=$1 user=$2 uid=$3 home=$4
	mkdir -p "$root/etc/ssl/certs" "$root$home" "$root/tmp"
	chmod 1777 "$root/tmp"
	printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:%s:%s:%s:%s:/bin/sh\n' "$user" "$uid" "$uid" "$user" "$home" > "$root/etc/passwd"
	printf 'root:x:0:\n%s:x:%s:\n' "$user" "$uid" > "$root/etc/group"
	cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
}

# golang:1.26-bookworm
go_root="$(go env GOROOT)"
go_version="$(go env GOVERSION)"
mkdir -p "$work/go/root/usr/local" "$work/go/root/root" "$work/go/root/go"
cp -a "$go_root" "$work/go/root/usr/local/go"
busybox_into "$work/go/root"
etc_into "$work/go/root" nonroot 65532 /home/nonroot
cat > "$work/go/Containerfile" <<EOF
FROM scratch
COPY root/ /
ENV PATH=/usr/local/go/bin:/go/bin:/bin HOME=/root GOPATH=/go GOTOOLCHAIN=local \
    GOPROXY=$(go env GOPROXY) GOSUMDB=$(go env GOSUMDB) GOFLAGS=$(go env GOFLAGS)
LABEL org.opencontainers.image.description="stand-in for golang, tests only ($go_version)"
WORKDIR /go
EOF
podman build -q --format docker -t golang:1.26-bookworm "$work/go" >/dev/null

# gcr.io/distroless/static-debian12:nonroot
mkdir -p "$work/static/root/usr/share"
etc_into "$work/static/root" nonroot 65532 /home/nonroot
cp -a /usr/share/zoneinfo "$work/static/root/usr/share/"
cat > "$work/static/Containerfile" <<'EOF'
FROM scratch
COPY root/ /
COPY --chown=65532:65532 root/home/nonroot /home/nonroot
LABEL org.opencontainers.image.description="stand-in for distroless static nonroot, tests only"
USER 65532:65532
EOF
podman build -q --format docker -t gcr.io/distroless/static-debian12:nonroot "$work/static" >/dev/null

# postgres:15
pg=/usr/lib/postgresql/15
r="$work/pg/root"
mkdir -p "$r/usr/lib/postgresql" "$r/usr/share/postgresql" "$r/usr/share" "$r/var/lib/postgresql" "$r/usr/local/bin"
cp -a "$pg" "$r/usr/lib/postgresql/15"
cp -a /usr/share/postgresql/15 "$r/usr/share/postgresql/15"
cp -a /usr/share/zoneinfo "$r/usr/share/"
copy_libs "$r" "$pg"/bin/* "$pg"/lib/*.so
busybox_into "$r"
etc_into "$r" postgres 999 /var/lib/postgresql
cp "$here/postgres-entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
cat > "$work/pg/Containerfile" <<'EOF'
FROM scratch
COPY root/ /
ENV PATH=/usr/lib/postgresql/15/bin:/bin PGDATA=/var/lib/postgresql/data TZ=UTC
LABEL org.opencontainers.image.description="stand-in for postgres:15, tests only"
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
EXPOSE 5432
EOF
podman build -q --format docker -t postgres:15 "$work/pg" >/dev/null
echo "stand-ins built: golang:1.26-bookworm ($go_version), gcr.io/distroless/static-debian12:nonroot, postgres:15"
