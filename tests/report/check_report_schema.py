#!/usr/bin/python3
"""Checks docs/report.schema.json against the golden report (ctest: report_schema_test).

1. The golden JSON report validates (Debian's python3-jsonschema, Draft 7).
2. The schema is complete: every member the golden report has is described in the schema
   (the published schema allows unknown members, as v1 readers must; this keeps the document
   from falling behind report.proto).
3. The validator really checks: a report with a wrong verdict, a negative count or a
   missing member is rejected.

Usage: check_report_schema.py SCHEMA REPORT_JSON
"""
import copy
import json
import sys

import jsonschema


def resolve(schema, node):
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


def undescribed(schema, node, value, where):
    """The members of `value` that `node` (a subschema) does not list, as paths."""
    node = resolve(schema, node)
    missing = []
    if isinstance(value, dict) and "properties" in node:
        for key, member in value.items():
            if key not in node["properties"]:
                missing.append(where + "." + key)
            else:
                missing += undescribed(schema, node["properties"][key], member, where + "." + key)
    elif isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            missing += undescribed(schema, node["items"], item, "%s[%d]" % (where, i))
    return missing


def main():
    schema = json.load(open(sys.argv[1]))
    report = json.load(open(sys.argv[2]))
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
    for e in errors:
        print("golden report: %s: %s" % ("/".join(map(str, e.path)), e.message))
    missing = undescribed(schema, schema, report, "$")
    for m in missing:
        print("not described in the schema: " + m)

    broken = []
    bad = copy.deepcopy(report)
    bad["targets"][0]["endpoints"][0]["fields"][0]["verdict"] = "bogus"
    broken.append(("unknown verdict", bad))
    bad = copy.deepcopy(report)
    bad["targets"][0]["requests"] = -1
    broken.append(("negative count", bad))
    bad = copy.deepcopy(report)
    del bad["targets"][0]["latency"]["p99_us"]
    broken.append(("missing p99_us", bad))
    bad = copy.deepcopy(report)
    bad["schema"] = "doppel.report/v2"
    broken.append(("other schema", bad))
    accepted = [name for name, doc in broken if validator.is_valid(doc)]
    for name in accepted:
        print("the schema accepts a broken report: " + name)

    if errors or missing or accepted:
        return 1
    print("report schema: the golden report validates, every member is described, %d broken "
          "reports rejected" % len(broken))
    return 0


if __name__ == "__main__":
    sys.exit(main())
