"""Execute every chapter (or the notebooks named) on a copy and print its run time.

    .venv/bin/python benchmarks/notebook_times.py [notebooks/NN_name.ipynb ...]

The course's budget: each chapter under 60 s on a 2-core CPU, the whole book under 10 min.
The copy sits beside the original (so relative paths behave) and is deleted afterwards.
"""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from execute_notebooks import execute  # noqa: E402

BUDGET_S = 60.0


def main(paths: list[Path]) -> None:
    total = 0.0
    for path in paths:
        copy = path.parent / f".timing-{path.name}"
        shutil.copy(path, copy)
        try:
            seconds = execute(copy)
        finally:
            copy.unlink(missing_ok=True)
        total += seconds
        flag = "ok" if seconds < BUDGET_S else "OVER BUDGET"
        print(f"{path}: {seconds:6.1f} s  {flag}", flush=True)
    print(f"total: {total:.1f} s for {len(paths)} notebooks")


if __name__ == "__main__":
    args = [Path(a) for a in sys.argv[1:]] or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    main(args)
