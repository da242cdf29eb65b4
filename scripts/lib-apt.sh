# lib-apt.sh - sourced by the deps*.sh scripts: the one way this project
# installs Debian packages.
#
#   apt_ensure NAME PKG...   installs the PKGs not installed yet (one apt-get
#                            update first), as root or through sudo, waiting
#                            up to 10 min for another apt/dpkg run's lock;
#                            returns at once when all are installed. NAME
#                            prefixes its messages.

apt_ensure() {
    local name=$1 p sudo=""
    shift
    local missing=()
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "$name: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "$name: run as root to install ${missing[*]}" >&2; return 1; }
        sudo=sudo
    fi
    # Other apt users (another script, unattended upgrades): wait for the lock.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}
