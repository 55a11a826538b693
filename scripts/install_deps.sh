#!/usr/bin/env bash
# Installs the Debian packages the project needs, if any is missing (idempotent, quick when all
# are present). Used by run.sh and test.sh; never install by hand. Extra package names given as
# arguments are installed too (scripts/check_fuzz.sh asks for clang and libFuzzer this way).
set -euo pipefail
packages=(g++ cmake make libeigen3-dev libfmt-dev catch2 zlib1g-dev nlohmann-json3-dev dataset-fashion-mnist python3-torch doxygen libbenchmark-dev libopenblas0-pthread libcli11-dev libstb-dev libopenmpi-dev openmpi-bin "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
