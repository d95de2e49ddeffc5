#!/bin/sh
# The demo behind `make demo`: verify the fixture pack, route ten held-out
# prompts, then score the router against the single-model baselines.
set -eu
echo "== verify ($PACK)"
"$CLI" verify --key "$PUB" "$PACK"
echo
echo "== inspect"
"$CLI" inspect "$PACK"
echo
echo "== route ten held-out prompts (lambda 0.1: 10 accuracy points buy the whole cost range)"
"$PYTHON" -c '
import json, sys
n = 0
for line in open(sys.argv[1] + "/prompts.jsonl"):
    p = json.loads(line)
    if p.get("split") == "test" and n < 10:
        print(p["text"].replace("\n", " ")); n += 1
' "$DATA" | "$CLI" route --pack "$PACK" --key "$PUB" --lambda 0.1 | "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    top = sorted(r["predicted"].items(), key=lambda kv: -kv[1])[:3]
    print("- %.70s..." % r["prompt"])
    print("  -> %s (%s, cost %g): utility %.3f, nearest reference at cosine distance %.3f%s"
          % (r["model"], r["where"], r["cost"], r["utility"], r["nearest_distance"],
             ", no known word: priors only" if r["prior_only"] else ""))
    print("     best predicted: " + ", ".join("%s %.2f" % kv for kv in top))
'
echo
echo "== held-out accuracy and cost (cost = billions of parameters)"
"$CLI" eval --pack "$PACK" --key "$PUB" --data "$DATA"
