#!/usr/bin/env bash
# Executes the notebooks in notebooks/ headless (nbclient) against a built `baton` binary,
# as CI does. The notebooks are copied to a scratch directory and run there, so no output
# is ever written back into the repository.
#
#   bash scripts/run-notebooks.sh                      # every notebooks/*.ipynb
#   bash scripts/run-notebooks.sh notebooks/01_explore_journeys.ipynb
#
# Environment:
#   BATON               the baton binary [default: $CARGO_TARGET_DIR/release/baton]
#   CARGO_TARGET_DIR    cargo's target directory [default: $HOME/.cache/baton/target]
#   BATON_NB_VENV       the virtual environment [default: $HOME/.cache/baton/venv]
#   PYTHON              the interpreter that creates the venv [default: python3]
#   BATON_NB_OUT        keep the executed notebooks and their data here [default: a
#                       temporary directory, removed at the end unless a notebook fails]
#   BATON_NB_TIMEOUT    seconds one cell may run [default: 600]
#   BATON_NB_REQUIRE_CLEAR=1   fail when a notebook has outputs (CI sets it; else a warning)
#   BATON_NB_CUSTOMERS, BATON_NB_DAYS   the size of the simulated data (see notebooks/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

target="${CARGO_TARGET_DIR:-$HOME/.cache/baton/target}"
BATON="${BATON:-$target/release/baton}"
if [[ "$BATON" != */* ]]; then
    BATON=$(command -v "$BATON" || true)
fi
if [ ! -x "$BATON" ]; then
    echo "run-notebooks: no baton binary at ${BATON:-<not on PATH>}: build it with" >&2
    echo "  cargo build --release   (CARGO_TARGET_DIR=$target), or point BATON at one" >&2
    exit 1
fi
export BATON=$(cd "$(dirname "$BATON")" && pwd)/$(basename "$BATON")

venv="${BATON_NB_VENV:-$HOME/.cache/baton/venv}"
req=notebooks/requirements.txt
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    command -v "$py" >/dev/null || { echo "run-notebooks: $py not found: install Python 3.11+ (or set PYTHON)" >&2; exit 1; }
    echo "run-notebooks: creating the venv $venv"
    "$py" -m venv "$venv"
fi
# Install only when the requirements (or the interpreter) changed since the last install.
want="$( (cat "$req"; "$venv/bin/python" -VV) | sha256sum | cut -d' ' -f1)"
stamp="$venv/.baton-notebooks-requirements"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    t=$(date +%s)
    echo "run-notebooks: installing $req into $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
    echo "$want" >"$stamp"
    echo "run-notebooks: pip install took $(( $(date +%s) - t ))s"
fi

if [ $# -eq 0 ]; then
    set -- notebooks/*.ipynb
fi
if [ -n "${BATON_NB_OUT:-}" ]; then
    out=$BATON_NB_OUT
    mkdir -p "$out"
    keep=1
else
    out=$(mktemp -d "${TMPDIR:-/tmp}/baton-notebooks.XXXXXX")
    keep=0
fi
out=$(cd "$out" && pwd)
echo "run-notebooks: baton $("$BATON" --version 2>/dev/null | awk '{print $2}') at $BATON; executing into $out"

status=0
"$venv/bin/python" - "$out" "$@" <<'PY' || status=$?
"""Runs each notebook cell by cell in a fresh kernel of this venv; names the failing cell."""
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from traitlets.config import Config
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

out = Path(sys.argv[1])
notebooks = [Path(p) for p in sys.argv[2:]]
timeout = int(os.environ.get("BATON_NB_TIMEOUT", "600"))

# A kernel spec of exactly this interpreter, so a `python3` kernel installed elsewhere on the
# machine can never be picked up instead.
spec = out / "jupyter" / "kernels" / "baton-notebooks"
spec.mkdir(parents=True, exist_ok=True)
(spec / "kernel.json").write_text(json.dumps({
    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "baton notebooks", "language": "python",
}))
os.environ["JUPYTER_PATH"] = str(out / "jupyter")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

# Notebooks are committed without outputs; CI (BATON_NB_REQUIRE_CLEAR=1) insists on it.
dirty = [str(p) for p in notebooks
         if any(c.get("outputs") or c.get("execution_count") for c in nbformat.read(p, as_version=4).cells
                if c.cell_type == "code")]
if dirty:
    msg = ("has outputs: clear them before committing (jupyter nbconvert --clear-output --inplace "
           + " ".join(dirty) + ")")
    if os.environ.get("BATON_NB_REQUIRE_CLEAR") == "1":
        print(f"run-notebooks: FAILED: {', '.join(dirty)} {msg}", file=sys.stderr)
        sys.exit(1)
    print(f"run-notebooks: warning: {', '.join(dirty)} {msg}", file=sys.stderr)

failed = []
for src in notebooks:
    name = src.name
    run_dir = out / src.stem
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    os.environ["BATON_WORK"] = str(run_dir / "work")
    dest = run_dir / name
    nb = nbformat.read(src, as_version=4)
    # IPC transport: the kernel talks over local sockets in run_dir, not TCP ports.
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(run_dir / "kernel")}})
    client = NotebookClient(nb, timeout=timeout, kernel_name="baton-notebooks", config=ipc,
                            resources={"metadata": {"path": str(run_dir)}})
    t0 = time.time()
    error = None
    try:
        with client.setup_kernel():
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                t = time.time()
                try:
                    client.execute_cell(cell, i)
                except (CellExecutionError, CellTimeoutError, DeadKernelError) as e:
                    first = next((l for l in cell.source.splitlines() if l.strip()), "")
                    error = (i, first, e)
                    break
                print(f"  {name} cell {i}: {time.time() - t:.1f}s", flush=True)
    except Exception as e:  # the kernel did not start, or died between cells
        error = (None, "", e)
    nbformat.write(nb, dest)
    if error is None:
        print(f"run-notebooks: {name} passed in {time.time() - t0:.0f}s", flush=True)
        continue
    i, first, e = error
    e = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # the traceback's colours
    where = (f"cell {i} (counting from 0, markdown cells included): `{first.strip()[:70]}`"
             if i is not None else "kernel")
    print(f"\nrun-notebooks: FAILED: {name}, {where}:\n{e}\n"
          f"run-notebooks: the partly executed notebook is {dest}\n", file=sys.stderr, flush=True)
    failed.append(f"{name} {where}")

if failed:
    print("run-notebooks: failed notebooks:\n  " + "\n  ".join(failed), file=sys.stderr)
    sys.exit(1)
PY

if [ "$status" -ne 0 ]; then
    echo "run-notebooks: failed after $(( $(date +%s) - start ))s; executed notebooks kept in $out" >&2
    exit "$status"
fi
if [ "$keep" -eq 0 ]; then
    rm -rf "$out"
else
    echo "run-notebooks: executed notebooks in $out"
fi
echo "run-notebooks: notebooks finished in $(( $(date +%s) - start ))s"
