"""Load a results.json with piglit's own results loader, the code IGT's
summary tooling (`piglit summary`) runs: framework.backends.load ->
framework/backends/json.py load_results (_load, _update_results) ->
framework.results.TestrunResult.from_dict. Nothing here re-implements
piglit; it imports piglit's framework package and prints what it loaded.

usage: python3 piglit_load.py PIGLIT_DATA_DIR results.json

PIGLIT_DATA_DIR holds piglit's `framework` package: /usr/lib/<triplet>/piglit
from Debian's piglit package, or where .ci/run unpacks that package
(~/.cache/kcycle-test-piglit/usr/lib/<triplet>/piglit).
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import framework  # noqa: E402
from framework import backends, exceptions, results  # noqa: E402


def load(path):
    loaded = backends.load(path)
    # piglit's own totals for these tests, to hold the written ones against.
    recomputed = results.TestrunResult()
    recomputed.tests = loaded.tests
    recomputed.calculate_group_totals()
    tests = loaded.tests
    return {
        "framework": framework.__file__,
        "type": type(loaded).__name__,
        "name": loaded.name,
        "results_version": loaded.results_version,
        "tests": {n: str(t.result) for n, t in tests.items()},
        "subtests": {n: {s: str(v) for s, v in t.subtests.items()} for n, t in tests.items()},
        "durations": {n: round(t.time.total, 3) for n, t in tests.items()},
        "out": {n: t.out for n, t in tests.items()},
        "err": {n: t.err for n, t in tests.items()},
        "dmesg": {n: t.dmesg for n, t in tests.items()},
        "worst": str(max(t.result for t in tests.values())) if tests else None,
        "totals": {g: dict(t) for g, t in loaded.totals.items()},
        "recomputed_totals": {g: dict(t) for g, t in recomputed.totals.items()},
        "elapsed": round(loaded.time_elapsed.total, 3),
    }


if __name__ == "__main__":
    try:
        print(json.dumps(load(sys.argv[2])))
    except (exceptions.PiglitFatalError, exceptions.PiglitInternalError,
            KeyError, TypeError, ValueError) as e:
        print("piglit did not load {}: {}: {}".format(sys.argv[2], type(e).__name__, e),
              file=sys.stderr)
        sys.exit(1)
