#!/usr/bin/env bash
# make-identities.sh DIR SERVER [CLIENT...]: the bundled CA, all at once.
#
# Creates the CA in DIR unless DIR/ca.key exists, then a server identity
# for localhost and 127.0.0.1 (plus $SERVER_HOSTS) and one client identity
# per further name. Identities that exist already are left alone, so the
# script can be run again to add clients.
#
# The restpipe binary is $RESTPIPE, else restpipe on PATH, else one built
# from this repository (needs go).
set -euo pipefail

usage() {
	cat >&2 <<USAGE
usage: $(basename "$0") DIR SERVER [CLIENT...]

Creates the CA in DIR (unless DIR/ca.key exists), the server identity
SERVER for localhost and 127.0.0.1, and one client identity per CLIENT:
DIR/ca.crt, DIR/NAME.crt, DIR/NAME.key. Existing identities are kept.

environment:
  RESTPIPE       the restpipe binary (default: restpipe on PATH, else built from source)
  SERVER_HOSTS   more DNS names or IP addresses for the server, space-separated

example:
  $(basename "$0") ./ca server c1 c2
USAGE
	exit 2
}

[ $# -ge 2 ] || usage
dir=$1
server=$2
shift 2

# Every flag below is given on purpose: RESTPIPE_<FLAG> variables of the
# caller must not add hosts or force a replacement. restpipe ca ignores
# them (and says so); unsetting them keeps the output quiet, and an older
# restpipe in $RESTPIPE safe.
unset RESTPIPE_DIR RESTPIPE_NAME RESTPIPE_HOST RESTPIPE_USAGE RESTPIPE_DAYS RESTPIPE_FORCE

if [ -n "${RESTPIPE:-}" ]; then
	bin=$RESTPIPE
elif bin=$(command -v restpipe); then
	:
else
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	echo "building restpipe from $repo" >&2
	(cd "$repo" && go build -o "$tmp/restpipe" ./cmd/restpipe)
	bin=$tmp/restpipe
fi

summary=()

if [ -e "$dir/ca.key" ]; then
	summary+=("CA      $dir/ca.crt (exists, kept)")
else
	"$bin" ca init --dir "$dir" >/dev/null
	summary+=("CA      $dir/ca.crt (new)")
fi

# issue KIND NAME FLAGS...: issue NAME unless it exists.
issue() {
	local kind=$1 name=$2
	shift 2
	if [ -e "$dir/$name.crt" ] || [ -e "$dir/$name.key" ]; then
		summary+=("$(printf '%-7s %s %s (exists, kept)' "$kind" "$dir/$name.crt" "$dir/$name.key")")
		return
	fi
	"$bin" ca issue --dir "$dir" --name "$name" "$@" >/dev/null
	summary+=("$(printf '%-7s %s %s (new)' "$kind" "$dir/$name.crt" "$dir/$name.key")")
}

hosts=(--host localhost --host 127.0.0.1)
for h in ${SERVER_HOSTS:-}; do
	hosts+=(--host "$h")
done
issue server "$server" --usage server "${hosts[@]}"
for name in "$@"; do
	issue client "$name" --usage client
done

printf '%s\n' "${summary[@]}"
echo
echo "server: restpipe server --cert $dir/$server.crt --key $dir/$server.key --ca $dir/ca.crt ..."
if [ $# -gt 0 ]; then
	echo "client: restpipe client --cert $dir/$1.crt --key $dir/$1.key --ca $dir/ca.crt ..."
fi
