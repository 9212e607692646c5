# Shared by the scripts: install Debian packages the build needs when they
# are missing (IMXP_TEST_NO_INSTALL=1 refuses instead).
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    if [[ "${IMXP_TEST_NO_INSTALL:-0}" == 1 ]]; then
        echo "missing Debian packages: ${missing[*]}" >&2
        return 1
    fi
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The packages every build of the workspace needs.
BUILD_PACKAGES=(pkg-config libssl-dev libclang-dev clang)

# The standard tools the end-to-end interop tests run against (e2e/tests/),
# systemd-analyze for the unit tests, groff for the man page test, Prosody
# and slixmpp for the XMPP gateway tests (tests/tests/xmpp_gateway.rs).
TEST_PACKAGES=(gnupg openssl systemd libxml2-utils groff-base prosody python3-slixmpp)
