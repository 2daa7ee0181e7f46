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

# private_apt WORK MIRROR SUITE [ARCH]: an apt of its own in the empty
# directory WORK: the machine's way of fetching (Acquire::*: proxies, date
# checks), none of its sources, preferences, state or update hooks, and
# ARCH's packages when given (the machine's dpkg is never told of ARCH).
# Sets the array `apt` (the options every apt-get and apt-cache call of
# that apt takes), exports APT_CONFIG, and reads the suite's index.
private_apt() {
  local work=$1 mirror=$2 suite=$3 arch=${4:-}
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/parts"
  : >"$work/status"
  {
    apt-config dump Acquire
    echo "Dir::Etc::Parts \"$work/parts\";"
    echo 'Dir::Etc::Main "/dev/null";'
    if [ -n "$arch" ]; then
      echo "APT::Architecture \"$arch\";"
      echo "APT::Architectures { \"$arch\"; };"
    fi
  } >"$work/apt.conf" || die "apt-config cannot read the machine's apt configuration"
  export APT_CONFIG="$work/apt.conf"
  # Only the binary package index: no DEP-11 metadata, no translations.
  echo "deb [signed-by=$keyring target=Packages] $mirror $suite main" >"$work/sources.list"
  apt=(
    -o "Dir::Etc::SourceList=$work/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -o "Dir::State::Lists=$work/lists"
    -o "Dir::State::status=$work/status"
    -o "Dir::Cache=$work/cache"
    -o "APT::Sandbox::User=root"
  )
  apt-get "${apt[@]}" -q --error-on=any update >"$work/update.log" 2>&1 || {
    cat "$work/update.log" >&2
    die "apt-get update of $suite${arch:+ ($arch)} from $mirror failed (log above)"
  }
}
