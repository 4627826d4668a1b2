#!/usr/bin/env bash
# Checks that the real programs the tests talk to are installed; installs them with apt-get
# when running as root on Debian, otherwise says what to install.
set -u
PKGS="mosquitto mosquitto-clients rauc squashfs-tools e2fsprogs dbus swupdate cpio systemd-journal-remote vsftpd openssl curl"
missing=""
for cmd in mosquitto rauc mksquashfs mkfs.ext4 dbus-daemon swupdate cpio journalctl vsftpd openssl curl; do
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
[ -x /lib/systemd/systemd-journal-remote ] || missing="$missing systemd-journal-remote"
[ -z "$missing" ] && exit 0
echo "test prerequisites missing:$missing" >&2
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing: $PKGS" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PKGS >&2 && exit 0
fi
echo "install them with: sudo apt-get install -y $PKGS" >&2
exit 1
