#!/bin/sh
# Unpacks Debian's Sendmail for the end-to-end tests (tests/e2e_sendmail.rs)
# without installing it: the sendmail-bin package conflicts with postfix,
# which the Postfix tests need installed. Run as root on Debian:
#
#   tests/e2e/install-sendmail.sh [DIR]      (default /opt/tollgate-e2e/sendmail)
#
# It installs the shared libraries sendmail-bin depends on (no conflict
# there), m4 for the sendmail-cf macros, then `apt-get download`s
# sendmail-bin, sendmail-base and sendmail-cf and `dpkg -x`es them into DIR.
# The tests look in $TOLLGATE_SENDMAIL_ROOT, else in the default DIR.
set -eu
dest="${1:-/opt/tollgate-e2e/sendmail}"
export DEBIAN_FRONTEND=noninteractive

# sendmail-bin's dependencies, less the sendmail packages themselves and
# the virtual ones: libraries, plus procps and debconf helpers.
deps=$(apt-cache depends --no-recommends --no-suggests --no-conflicts \
         --no-breaks --no-replaces --no-enhances sendmail-bin \
       | awk '$1 == "Depends:" || $1 == "PreDepends:" { print $2 }' \
       | grep -v -e '^<' -e '^sendmail' | sort -u)
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends m4 util-linux $deps >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
(cd "$work" && apt-get download -qq sendmail-bin sendmail-base sendmail-cf 2>/dev/null)
mkdir -p "$dest"
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$dest"
done

missing=$(ldd "$dest/usr/libexec/sendmail/sendmail" | grep 'not found' || true)
if [ -n "$missing" ]; then
  echo "install-sendmail.sh: sendmail still lacks libraries:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "install-sendmail.sh: Sendmail unpacked in $dest"
