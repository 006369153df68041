#!/usr/bin/env bash
# Idempotent set-up for development and CI.
#
#   bash scripts/setup.sh
#
# 1. On Debian/Ubuntu, installs the system libraries that Qt and napari need to
#    run headless under Xvfb (only the missing ones; apt-get update runs once,
#    and only when something is missing).
# 2. Creates .venv (if absent) and installs the package editable with its
#    [testing] extra. The install is skipped while a stamp file says that this
#    exact pyproject.toml is already installed, because downloading and
#    unpacking TensorFlow + napari is by far the slowest step.
#
# Environment: PYTHON picks the interpreter (default: first of python3.11,
# python3.12, python3.13, python3 that is >= 3.11); NAPARI_UNET_FORCE_INSTALL=1
# re-runs the pip install even when the stamp is current.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.napari-unet-setup-stamp"

# xauth is only "Recommended" by xvfb, but xvfb-run cannot start without it.
APT_PACKAGES=(
    xvfb xauth
    libgl1-mesa-dri libglx-mesa0 libegl1
    libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
    libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0
    libxcb-shape0 libxcb-cursor0
    libdbus-1-3 libfontconfig1
)

log() { printf '[setup] %s\n' "$*" >&2; }

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Runs a command as root: directly, or through sudo (non-interactively when
# there is no terminal, e.g. in CI). Returns 1 if neither is possible.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        if [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
    else
        return 1
    fi
}

install_system_packages() {
    local extra=("$@") missing=() p
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
        log "no apt-get: skipping system packages (Xvfb/Mesa/Qt libraries must already be present)"
        return 0
    fi
    for p in "${APT_PACKAGES[@]}" "${extra[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "system packages: all present"
        return 0
    fi
    log "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A failure here is reported, not fatal: the tests then show what is missing.
    if ! as_root apt-get update -qq; then
        log "WARNING: apt-get update failed (not root and no usable sudo?); continuing"
        return 0
    fi
    if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
        log "WARNING: could not install: ${missing[*]}; GUI tests may fail"
    fi
}

python_ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

find_python() {
    local c
    if [ -n "${PYTHON:-}" ]; then
        python_ok "$PYTHON" || { log "PYTHON=$PYTHON is not Python >= 3.11"; exit 1; }
        echo "$PYTHON"
        return
    fi
    for c in python3.11 python3.12 python3.13 python3; do
        if command -v "$c" >/dev/null 2>&1 && python_ok "$c"; then
            echo "$c"
            return
        fi
    done
    log "no Python >= 3.11 found (set PYTHON=/path/to/python3.11)"
    exit 1
}

# The stamp records what was installed: the pyproject.toml contents and the
# venv's Python version. Anything else (e.g. a changed source file) needs no
# reinstall, since the install is editable.
stamp_value() {
    local pyver resources
    pyver="$("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    # The install copies napari.yaml and sample_data/ into the package
    # (scripts/hatch_build.py): a change to them needs a reinstall too.
    resources="$(cat napari.yaml scripts/hatch_build.py sample_data/* | sha256sum | cut -d' ' -f1)"
    printf 'pyproject=%s resources=%s python=%s\n' \
        "$(sha256sum pyproject.toml | cut -d' ' -f1)" "$resources" "$pyver"
}

# True when the venv imports napari_unet from *this* checkout (a venv copied
# from elsewhere would point at another src/).
editable_points_here() {
    local where
    where="$("$VENV/bin/python" -c 'import napari_unet, os; print(os.path.realpath(napari_unet.__file__))' 2>/dev/null)" || return 1
    [ "$where" = "$(realpath "$ROOT/src/napari_unet/__init__.py")" ]
}

main() {
    local py extra_apt=()
    py="$(find_python)"
    # Debian's own python3.x ships venv/ensurepip separately.
    if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        extra_apt+=(python3-venv "python$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv")
    fi
    install_system_packages "${extra_apt[@]}"

    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV with $py ($("$py" --version 2>&1))"
        "$py" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    fi

    if [ "${NAPARI_UNET_FORCE_INSTALL:-0}" != 1 ] && [ -f "$STAMP" ] \
        && [ "$(cat "$STAMP")" = "$(stamp_value)" ] && editable_points_here; then
        log "Python environment up to date ($VENV)"
    else
        log "pip install -e '.[testing]' (first run: several minutes, TensorFlow + napari)"
        local t0=$SECONDS
        rm -f "$STAMP"
        # The distribution was called napari-unet before (a name PyPI gives to
        # another project): an old editable install would register the plugin twice.
        if "$VENV/bin/python" -m pip show -q napari-unet >/dev/null 2>&1; then
            "$VENV/bin/python" -m pip uninstall -y -q napari-unet
        fi
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install \
            --progress-bar off -e ".[testing]"
        stamp_value >"$STAMP"
        log "installed in $((SECONDS - t0)) s"
    fi
    setup_bioimageio_env "$py"
}

# The bioimage.io zoo's own tools (bioimageio.core) test exported packages in
# their own environment, .venv-bio: bioimageio.core 0.11 pins bioimageio.spec
# 0.5.12.0, which fails on the pydantic napari installs. TensorFlow and Keras
# there match the project's. NAPARI_UNET_SKIP_BIOIMAGEIO=1 skips it.
setup_bioimageio_env() {
    local py="$1" venv_bio="${NAPARI_UNET_BIOIMAGEIO_VENV:-$ROOT/.venv-bio}" versions want
    [ "${NAPARI_UNET_SKIP_BIOIMAGEIO:-0}" = 1 ] && return 0
    versions="$("$VENV/bin/python" -c 'import tensorflow as tf, keras; print(tf.__version__, keras.__version__)' 2>/dev/null | tail -1)"
    local tf_version="${versions% *}" keras_version="${versions#* }"
    want="bioimageio.core==0.11.0 bioimageio.spec==0.5.12.0 tensorflow-cpu==$tf_version keras==$keras_version"
    if [ -x "$venv_bio/bin/bioimageio" ] && [ "$(cat "$venv_bio/.stamp" 2>/dev/null)" = "$want" ]; then
        log "bioimage.io test environment up to date ($venv_bio)"
        return 0
    fi
    log "creating $venv_bio for the bioimage.io zoo's checks ($want)"
    local t0=$SECONDS
    rm -rf "$venv_bio"
    "$py" -m venv "$venv_bio"
    # shellcheck disable=SC2086
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv_bio/bin/pip" install -q --progress-bar off \
        $want "pydantic>=2.10,<2.14" h5py
    echo "$want" >"$venv_bio/.stamp"
    log "bioimage.io environment ready in $((SECONDS - t0)) s"
}

# Serialise concurrent runs (two terminals, or test.sh run twice) so that they
# never pip-install into the same venv at once.
if command -v flock >/dev/null 2>&1 && [ -z "${_NAPARI_UNET_SETUP_LOCKED:-}" ]; then
    mkdir -p "$VENV"
    export _NAPARI_UNET_SETUP_LOCKED=1
    exec flock "$VENV/.setup.lock" bash "${BASH_SOURCE[0]}" "$@"
fi
main "$@"
