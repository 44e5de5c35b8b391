"""Load a results.json as piglit's results loader does (what IGT's summary
tooling runs: framework/backends/json.py load_results -> _load ->
_update_results -> results.TestrunResult.from_dict) and print what it loaded.

piglit is not on PyPI, so this follows its checks rather than importing it:
json.load with ordered pairs; results_version at least 7 (the minimum) and,
as nothing here upgrades, exactly 10 (the current one); every test's and
subtest's status through status_lookup, which rejects names piglit does not
know; TimeAttribute(**dict) without '__type__', so no other keys; out and err
must be text; totals are dicts of counts.

usage: python3 piglit_load.py results.json
"""
import collections
import json
import sys

CURRENT_JSON_VERSION = 10
MINIMUM_SUPPORTED_VERSION = 7
# framework/status.py _STATUS_MAP, in its order of badness.
STATUSES = ["skip", "notrun", "pass", "warn", "dmesg-warn", "fail", "dmesg-fail",
            "timeout", "crash", "incomplete"]


class PiglitError(Exception):
    pass


def status_lookup(name):
    if name not in STATUSES:
        raise PiglitError('Unknown status "{}"'.format(name))
    return name


class TimeAttribute:
    __slots__ = ["start", "end"]

    def __init__(self, start=0.0, end=0.0):
        self.start = start
        self.end = end

    @classmethod
    def from_dict(cls, dict_):
        dict_ = dict(dict_)
        dict_.pop("__type__", None)
        return cls(**dict_)  # a TypeError on any other key, as in piglit


class TestResult:
    @classmethod
    def from_dict(cls, dict_):
        inst = cls()
        inst.result = status_lookup(dict_.get("result", "notrun"))
        inst.subtests = {n: status_lookup(s) for n, s in dict_.get("subtests", {}).items()
                         if n != "__type__"}
        inst.time = TimeAttribute.from_dict(dict_["time"]) if "time" in dict_ else TimeAttribute()
        for field in ["out", "err", "dmesg"]:
            value = dict_.get(field, "")
            if not isinstance(value, str):
                raise PiglitError("{} attribute must be a unicode or bytes instance".format(field))
            setattr(inst, field, value)
        return inst


def load(path):
    with open(path) as f:
        result = json.load(f, object_pairs_hook=collections.OrderedDict)
    version = result["results_version"]
    if version < MINIMUM_SUPPORTED_VERSION:
        raise PiglitError('Unsupported version "{}"'.format(version))
    if version != CURRENT_JSON_VERSION:
        raise PiglitError("version {} would be upgraded and rewritten".format(version))
    tests = collections.OrderedDict(
        (name, TestResult.from_dict(t)) for name, t in result["tests"].items())
    totals = result.get("totals")
    if totals is not None:
        for group, counts in totals.items():
            for name, count in counts.items():
                if name != "__type__" and (name not in STATUSES or not isinstance(count, int)):
                    raise PiglitError("totals[{!r}] has {!r}: {!r}".format(group, name, count))
    elapsed = TimeAttribute.from_dict(result["time_elapsed"]) if "time_elapsed" in result else None
    return {
        "name": result.get("name"),
        "results_version": version,
        "tests": {n: t.result for n, t in tests.items()},
        "durations": {n: round(t.time.end - t.time.start, 3) for n, t in tests.items()},
        "root": dict(totals["root"]) if totals else None,
        "elapsed": None if elapsed is None else round(elapsed.end - elapsed.start, 3),
    }


if __name__ == "__main__":
    try:
        print(json.dumps(load(sys.argv[1])))
    except (PiglitError, KeyError, TypeError, ValueError) as e:
        print("piglit would not load {}: {}".format(sys.argv[1], e), file=sys.stderr)
        sys.exit(1)
