#!/usr/bin/env bash
# Puts the Apache Kafka broker jars (see pom.xml beside this file) into
# <repo>/.cache/kafka-jars/ so test/support/kafka/broker.ts can run a real
# KRaft broker with plain `java`. Idempotent: does nothing when the cache was
# filled from this very pom.xml. Usage: scripts/kafka/fetch-jars.sh [--force]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dest="$root/.cache/kafka-jars"
pom="$here/pom.xml"
# The stamp is the pom's hash: bumping a version in pom.xml forces a refetch.
sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi; }
want="$(sha256 "$pom" | cut -d' ' -f1)"

is_fresh() {
  [[ -f "$dest/.stamp" && "$(cat "$dest/.stamp")" == "$want" ]] &&
    compgen -G "$dest/kafka_2.13-*.jar" >/dev/null
}

if [[ "${1:-}" != "--force" ]] && is_fresh; then
  echo "fetch-jars: $dest is up to date ($(ls "$dest" | wc -l) jars), skipping"
  exit 0
fi

command -v mvn >/dev/null || { echo "fetch-jars: mvn not found on PATH" >&2; exit 1; }
mkdir -p "$root/.cache"

# Parallel test workers may call this at once: serialise, then look again.
if command -v flock >/dev/null; then
  exec 9>"$root/.cache/kafka-jars.lock"
  flock 9
  if [[ "${1:-}" != "--force" ]] && is_fresh; then
    echo "fetch-jars: $dest was filled by another run, skipping"
    exit 0
  fi
fi

# Copy into a temp dir and swap it in whole, so an interrupted run never
# leaves a half-filled cache that looks complete.
tmp="$(mktemp -d "$root/.cache/kafka-jars.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-jars: mvn dependency:copy-dependencies ($pom) -> $dest"
# The plugin version is pinned in pom.xml. Debian's Maven 3.8 prints bare
# ESC[0m codes even with -q -B, so strip them; pipefail keeps mvn's status.
mvn -q -B -f "$pom" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed -e $'s/\e\\[[0-9;]*m//g'
echo "$want" >"$tmp/.stamp"

rm -rf "$dest"
mv "$tmp" "$dest" # $dest is gone, so this is a rename
trap - EXIT
echo "fetch-jars: done, $(ls "$dest" | wc -l) jars in $dest"
