// Read a JUnit file the way mikepenz/action-junit-report's parser does
// (xml-js in compact mode; failure or error fails a case, skipped skips it,
// the message is the failure's message attribute) and print one JSON object.
//
// usage: NODE_PATH=<dir with xml-js> node action_junit_report_read.js junit.xml
'use strict';
const fs = require('fs');
const parser = require('xml-js');

const list = (x) => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
const text = (node) => (node ? String(node._cdata || node._text || '') : '');

const report = JSON.parse(parser.xml2json(fs.readFileSync(process.argv[2], 'utf8'), { compact: true }));
const cases = {};
let total = 0, failed = 0, skipped = 0;
for (const suite of list(report.testsuites ? report.testsuites.testsuite : report.testsuite)) {
  for (const testcase of list(suite.testcase)) {
    total++;
    const failure = list(testcase.failure)[0] || list(testcase.error)[0];
    const skip = Boolean(testcase.skipped);
    if (skip) skipped++;
    if (failure && !skip) failed++;
    cases[testcase._attributes.name] = {
      status: skip ? 'skipped' : failure ? 'failure' : 'success',
      message: failure && failure._attributes ? failure._attributes.message || null : null,
      details: text(failure),
      properties: list(testcase.properties && testcase.properties.property)
        .map((p) => [p._attributes.name, p._attributes.value]),
      systemErr: text(testcase['system-err']),
    };
  }
}
console.log(JSON.stringify({ total, failed, skipped, passed: total - failed - skipped, cases }));
