# Sourced by the scripts that fetch from Debian's archive (they define die).
# debian_mirror prints the archive as this machine's apt reaches it: the
# base of the sources entry for this host's own release.
# FWRUN_DEBIAN_MIRROR overrides it, e.g. on a host that is not Debian.
debian_mirror() {
  if [ -n "${FWRUN_DEBIAN_MIRROR:-}" ]; then
    echo "$FWRUN_DEBIAN_MIRROR"
    return
  fi
  local codename nolists mirror
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "this host names no release in /etc/os-release: set FWRUN_DEBIAN_MIRROR"
  nolists=$(mktemp -d)
  mirror=$(apt-get -o "Dir::State::Lists=$nolists" --print-uris update 2>/dev/null |
    sed -n "s|^'\(.*\)/dists/$codename/InRelease'.*|\1|p" | head -n1) || true
  rm -rf "$nolists"
  [ -n "$mirror" ] || die "no apt source of this machine serves $codename: set FWRUN_DEBIAN_MIRROR to Debian's archive"
  echo "$mirror"
}
