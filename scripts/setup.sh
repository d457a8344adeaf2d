#!/usr/bin/env bash
# Install what DK·VAE Live needs on a Debian/Ubuntu machine, idempotently.
#   scripts/setup.sh          the live daemon only (no TensorFlow)
#   scripts/setup.sh dev      plus what the tests need: training stack, JACK client, Pure Data
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-live}"

# gcc, libc6-dev and python3-dev build the one C part, the audio mixer (dkvae_live/_mixer.c).
apt_packages=(libportaudio2 libsndfile1 jackd2 gcc libc6-dev python3-dev)
# hydrogen: its h2cli checks the Hydrogen kits that `dkvae-live export-kit` writes.
[ "$what" = dev ] && apt_packages+=(puredata-core hydrogen)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
extras="live"; [ "$what" = dev ] && extras="live,train,dev"
stamp=".venv/.installed-$extras-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -e "$stamp" ]; then
  echo "setup: installing dkvae-live[$extras] into .venv"
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
