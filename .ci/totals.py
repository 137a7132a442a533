"""Sum the closing 'N passed ... N failed ... N skipped' line of each stage's log into one line."""

import re
import sys

totals = {"passed": 0, "failed": 0, "skipped": 0}
for path in sys.argv[1:]:
    closing = None
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            if re.search(r"\d+ passed", line):
                closing = line
    if closing is None:
        sys.exit(f"ci: no closing 'N passed' line in {path}")
    for word in totals:
        found = re.search(rf"(\d+) {word}", closing)
        totals[word] += int(found.group(1)) if found else 0
print(f"ci: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
sys.exit(1 if totals["failed"] else 0)
