#!/usr/bin/env bash
# Makes sure the Debian packages of the WordPress end-to-end test are installed: installs the
# missing ones with apt-get when this runs as root on a Debian-like system (non-interactive, and
# without starting their services), otherwise says what to install and fails.
set -euo pipefail

PACKAGES=(wordpress mariadb-server php-cli php-mysql php-curl)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

tell() {
  echo "test-wordpress: missing Debian packages: ${missing[*]}" >&2
  echo "  install them with:  sudo apt-get install --no-install-recommends ${missing[*]}" >&2
  echo "  (the test runs its own MariaDB and php -S on free ports; the packages' services may stay stopped)" >&2
  exit 1
}
command -v apt-get >/dev/null || tell
[ "$(id -u)" = 0 ] || tell
[ "${INSTAPIPE_NO_APT:-}" = 1 ] && tell

echo "test-wordpress: apt-get install ${missing[*]} (non-interactive, services not started)"
# policy-rc.d answering 101 keeps apache2 and mariadb from starting; ours only while installing.
own_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
fi
cleanup() { [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || { echo "test-wordpress: apt-get update failed (no network to the Debian mirror?)" >&2; tell; }
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || tell
echo "test-wordpress: installed ${missing[*]}"
