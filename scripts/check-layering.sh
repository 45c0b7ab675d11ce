#!/usr/bin/env bash
# check-layering.sh BUILD_DIR -- the architecture rules of docs/architecture.md, checked on the
# object files themselves (what `nm` says each file defines and needs), not on #includes:
#   1. inside each component (proxy/, scheduler/, discovery/, lib/, cli/) the files form a DAG:
#      no file needs a symbol from a file that (directly or not) needs one of its own;
#   2. lib/ needs nothing from above it, and no component needs another one's symbols;
#   3. no global symbol is defined in two object files (besides each program's main);
#   4. only the scheduler's task module writes a task's status (a grep over the sources);
#   5. no source file is longer than 800 lines (a file that long has more than one job).
# Exit 0 when all hold; else every violation is printed and the exit code is 1.
set -euo pipefail
build=${1:?usage: check-layering.sh BUILD_DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
export LC_ALL=C

# One line per object file: "<component> <object path>". Test, bench and fuzz objects are not part
# of the product.
objects=$(find "$build" -name '*.c.o' -path '*CMakeFiles*' |
  grep -Ev '/(tests|bench|demo)/' | sort)
[ -n "$objects" ] || { echo "check-layering: no object files under $build (build first)" >&2; exit 1; }

table=$(mktemp)
trap 'rm -f "$table"' EXIT
for o in $objects; do
  comp=$(basename "$(dirname "$(dirname "$(dirname "$o")")")")
  file=$(basename "$o" .o)
  [ -f "$src/$comp/$file" ] || continue # left over from a source file that is gone
  # nm -P: "name type value size"; defined global symbols are upper case letters other than U.
  nm -P "$o" | awk -v c="$comp" -v f="$file" '
    $2 == "U" { print "U", c, f, $1; next }
    $2 ~ /^[TDBRCGSV]$/ { print "D", c, f, $1 }'
done | sort -u > "$table"

rc=0
python3 - "$table" <<'PY' || rc=1
import sys, collections
defs = collections.defaultdict(set)    # symbol -> {(component, file)}
needs = collections.defaultdict(set)   # (component, file) -> {symbol}
for line in open(sys.argv[1]):
    kind, comp, f, sym = line.split()
    (defs[sym].add((comp, f)) if kind == "D" else needs[(comp, f)].add(sym))
bad = []
for sym, where in sorted(defs.items()):
    if len(where) > 1 and sym != "main":
        bad.append("symbol %s is defined in %s" % (sym, ", ".join("%s/%s" % w for w in sorted(where))))
edges = collections.defaultdict(set)
for node, syms in needs.items():
    for s in syms:
        for d in defs.get(s, ()):
            if d == node:
                continue
            if d[0] != node[0] and d[0] != "lib":
                bad.append("%s/%s needs %s from %s/%s: %s" % (node + (s,) + d + (
                    "lib/ must not depend on anything above it" if node[0] == "lib"
                    else "components talk through lib/ or over the network, not by linking",)))
            else:
                edges[node].add(d)
# Cycles: Tarjan's strongly connected components over the file graph.
index, low, stack, on, sccs = {}, {}, [], set(), []
def strong(v):
    index[v] = low[v] = len(index); stack.append(v); on.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(set(needs) | {d for ds in defs.values() for d in ds}):
    if v not in index:
        strong(v)
for c in sccs:
    detail = []
    for a in c:
        for b in sorted(edges[a]):
            if b in c:
                syms = sorted(s for s in needs[a] if b in defs.get(s, ()))
                detail.append("    %s -> %s (%s)" % (a[1], b[1], ", ".join(syms[:4]) + (" ..." if len(syms) > 4 else "")))
    bad.append("cycle in %s/: %s\n%s" % (c[0][0], " ".join(f for _, f in c), "\n".join(detail)))
for b in bad:
    print("check-layering: " + b)
n = sum(len(v) for v in edges.values())
print("check-layering: %d object files, %d file dependencies, %s" % (
    len(set(needs) | {d for ds in defs.values() for d in ds}), n, "FAILED" if bad else "a DAG per component"))
sys.exit(1 if bad else 0)
PY

# Rule 4: a task's status is written by scheduler/task.c alone. Writes look like
# json_object_set*(…, "last_status", …) or a "last_status" key inside a json_pack format.
if writes=$(grep -nE '"last_status"' "$src"/scheduler/*.c | grep -v '^'"$src"'/scheduler/task\.c:' |
            grep -E 'json_object_set|json_pack|"\{[^"]*last_status'); then
  echo "check-layering: task status written outside scheduler/task.c:"
  echo "$writes" | sed "s|^$src/|    |"
  rc=1
fi

# Rule 5.
long=$(cd "$src" && git ls-files -- '*.c' '*.h' '*.py' '*.sh' 2>/dev/null | xargs -r wc -l | awk '$2 != "total" && $1 > 800')
if [ -n "$long" ]; then
  echo "check-layering: source files over 800 lines:"
  echo "$long"
  rc=1
fi
exit $rc
