# Helpers shared by .ci/run, .ci/aarch64 and .ci/clang (sourced, not run): step lines, apt installs, a staged copy of the source, pyproject's requirement lists.

# A step's heading, with the seconds since the script started: ci_step TAG TEXT...
ci_step() { local tag="$1"; shift; printf '\n==> [%s%5ss] %s\n' "$tag" "$SECONDS" "$*"; }

# Debian packages installed with apt-get where missing (as root, or with sudo without a
# password; apt-get update once per script). Returns 1, with a one-line reason, where that cannot be done.
ci_apt_updated=""
ci_apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    local as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        sudo -n true 2>/dev/null && as_root=(sudo -n) ||
            { echo "cannot install ${missing[*]}: not root, and no sudo without a password" >&2; return 1; }
    fi
    command -v apt-get >/dev/null || { echo "cannot install ${missing[*]}: no apt-get" >&2; return 1; }
    if [[ -z $ci_apt_updated ]]; then
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        ci_apt_updated=1
    fi
    echo "apt-get install ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A copy of what a build and the tests need (no compiled files, no build tree):
# ci_stage_source REPO DEST. DEST/charrnn_ext then gets the compiled modules of a build
# made in DEST (setup.py build_ext --inplace).
ci_stage_source() {
    local repo="$1" dest="$2"
    rm -rf "$dest" && mkdir -p "$dest/charrnn_ext"
    cp -r "$repo/setup.py" "$repo/pyproject.toml" "$repo/README.md" "$repo/src" "$repo/tests" "$dest/"
    (cd "$repo" && find charrnn_ext -name '*.py' -exec cp --parents -t "$dest/" {} +)   # subpackages too
    rm -f "$dest"/src/*.c
}

# pyproject.toml's requirements, one a line: ci_requirements PYTHON PYPROJECT KIND
#   build:   [build-system] requires
#   runtime: [project] dependencies
#   test:    the test extra
#   core-test: runtime + the test extra's pytest and hypothesis (what the core's tests import)
ci_requirements() {
    "$1" - "$2" "$3" <<'EOF'
import re, sys, tomllib
with open(sys.argv[1], "rb") as f:
    meta = tomllib.load(f)
kind, project = sys.argv[2], meta["project"]
test = project["optional-dependencies"]["test"]
lists = {"build": meta["build-system"]["requires"], "runtime": project["dependencies"],
         "test": test,
         "core-test": project["dependencies"] + [
             r for r in test if re.match(r"[\w.-]+", r)[0].lower() in ("pytest", "hypothesis")]}
print("\n".join(lists[kind]))
EOF
}

# PyTorch's CPU build into the venv of PYTHON, for the tests that check the model against
# PyTorch: ci_install_torch PYTHON. Pinned by the CPU build's own version label (+cpu),
# so pip takes it only where it is offered (a wheel of CPU builds that pip's
# configuration points to) and never PyPI's CUDA build of several GB; where it is not
# offered, the tests against PyTorch skip with their reason and CI goes on.
ci_install_torch() {
    if "$1" -m pip install --quiet 'torch==2.13.0+cpu'; then
        echo "installed: torch $("$1" -c 'import torch; print(torch.__version__)')"
    else
        echo "no CPU build of torch 2.13.0 offered to pip here: the tests against PyTorch will skip"
    fi
}
