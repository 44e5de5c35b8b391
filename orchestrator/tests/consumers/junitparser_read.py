"""Read a JUnit file with junitparser (the parser behind EnricoMi's
publish-unit-test-result action) and print what it sees, one JSON object.

usage: python3 junitparser_read.py junit.xml
"""
import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped


def outcome(case):
    kinds = {Failure: "failure", Error: "error", Skipped: "skipped"}
    for result in case.result:
        for cls, name in kinds.items():
            if isinstance(result, cls):
                return name, result.message, result.type
    return "passed", None, None


def main(path):
    xml = JUnitXml.fromfile(path)
    cases = {}
    for suite in xml:
        for case in suite:
            kind, message, type_ = outcome(case)
            props = case._elem.find("properties")
            cases[case.name] = {
                "suite": suite.name,
                "outcome": kind,
                "is_passed": case.is_passed,
                "message": message,
                "type": type_,
                "properties": [
                    [p.get("name"), p.get("value")] for p in (props if props is not None else [])
                ],
                "system_err": case.system_err,
                "time": case.time,
            }
    print(json.dumps({"tests": xml.tests, "failures": xml.failures,
                      "errors": xml.errors, "skipped": xml.skipped, "cases": cases}))


if __name__ == "__main__":
    main(sys.argv[1])
