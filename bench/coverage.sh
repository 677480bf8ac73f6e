#!/usr/bin/env bash
# Coverage sampling benchmark (issue 19, "Measured, not asserted"; docs/sampling.md): at the
# same budget of BUDGET % of requests, the share of request classes that get at least one
# envelope with `--sample-mode coverage --sample-budget BUDGET%` vs `--sample BUDGET`
# (uniform); the endpoint mix of `doppel replay --reweight` of the coverage recording against
# the traffic's (total variation distance); and the recorder's CPU per request, coverage vs
# uniform.
#
# In one run, on 127.0.0.1 only, with everything in a fresh temp dir:
#   traffic   REQUESTS request paths generated once with a fixed SEED: ENDPOINTS endpoints
#             /svcN/items/ID (ID random digits, so the template is /svcN/items/{id}) with
#             Zipf-distributed frequencies (exponent ZIPF_S, ranks shuffled over N), plus RARE
#             rare classes on random endpoints, each sent 1-5 times at random positions
#             (?rare=K): 404, 500, 503, 429, 400, 409 with an error body of its own, or 200
#             with a shape of its own.
#   upstream  nginx (1 worker), a location per endpoint generated from the same seed: a JSON
#             body whose key set depends on N, and an `if ($arg_rare = K)` per rare class.
#             A second server block with the same locations logs each request's $uri: the
#             replay goes there.
#   client    curl --parallel --parallel-max PARALLEL -K CONFIG (one url a line, the paths in
#             order): every path exactly once per run.
# Per round: a uniform and a coverage recorder (`doppel record --threads 1`, own fresh store,
# so no class history) get the sequence at the same time, one curl each (paired: what else
# the machine runs weighs on both alike); their CPU time over the sequence / REQUESTS is the
# CPU per request. Then the class tables (`doppel sessions classes`) and a
# `doppel replay --reweight --max --no-diff` of the coverage session to the logging server.
# Once: a `--sample 100` recording of the same sequence, whose class table is the traffic's
# classes. Replaces the "coverage" section of bench/RESULTS.md. Takes 1-3 min.
#
# Environment: BUILD_DIR (default build), SKIP_BUILD=1, DOPPEL, REQUESTS (30000), ENDPOINTS
# (300), RARE (100), ZIPF_S (1.1), SEED (19), BUDGET (5, percent), ROUNDS (5), PARALLEL (16),
# LOAD_MAX (1.5), LOAD_WAIT (30), NO_RESULTS=1 (do not touch bench/RESULTS.md).
set -euo pipefail

cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-30000}
ENDPOINTS=${ENDPOINTS:-300}
RARE=${RARE:-100}
ZIPF_S=${ZIPF_S:-1.1}
SEED=${SEED:-19}
BUDGET=${BUDGET:-5}
ROUNDS=${ROUNDS:-5}
PARALLEL=${PARALLEL:-16}
LOAD_WAIT=${LOAD_WAIT:-30}

NAME=coverage
source bench/common.sh
bench_install nginx:nginx curl:curl python3:python3

# ---------------------------------------------------------------- traffic and upstream
# Writes $tmp/paths.txt (the sequence), $tmp/locations.conf (nginx) and prints the ground
# truth: "requests endpoints classes rare_requests".
truth=$(python3 - "$tmp" "$REQUESTS" "$ENDPOINTS" "$RARE" "$ZIPF_S" "$SEED" <<'EOF'
import random, sys
out, n, m, rare, s, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
rng = random.Random(seed)
vals = {"name": '"x"', "price": "12.5", "tags": '["a","b"]', "owner": '{"id":7,"login":"u"}',
        "created": '"2024-01-01"', "active": "true", "score": "3", "items": '[{"id":1},{"id":2}]',
        "extra": '{"v":1}', "ref": "null"}
fields = list(vals)
def main_body(e):  # the key set depends on e's bits
    keys = [f for b, f in enumerate(fields) if (e >> b) & 1 or b == e % len(fields)]
    return "{" + ",".join(['"id":%d' % e] + ['"%s":%s' % (k, vals[k]) for k in keys]) + "}"
kinds = [(404, '{"error":"not found","e%d":1}'), (500, '{"error":"internal","trace":"t","e%d":1}'),
         (503, '{"error":"unavailable","retry_after":5,"e%d":1}'), (429, '{"error":"slow down","e%d":1}'),
         (400, '{"error":"bad","field":"q","e%d":1}'), (200, None), (409, '{"error":"conflict","e%d":1}')]
rare_def = []  # (endpoint, status, body, times sent)
for k in range(rare):
    e = rng.randrange(1, m + 1)
    status, body = kinds[k % len(kinds)]
    body = body % k if body else main_body(e)[:-1] + ',"deprecated":true,"r%d":{"a":[1]}}' % k
    rare_def.append((e, status, body, rng.randint(1, 5)))
nrare = sum(d[3] for d in rare_def)
ranks = list(range(1, m + 1))
rng.shuffle(ranks)  # ranks[r]: the endpoint of Zipf rank r + 1
weights = [1.0 / (r + 1) ** s for r in range(m)]
seq = ["/svc%d/items/%d" % (ranks[r], rng.randrange(1, 10**6))
       for r in rng.choices(range(m), weights=weights, k=n - nrare)]
for k, (e, status, body, times) in enumerate(rare_def):
    for _ in range(times):
        seq.insert(rng.randrange(len(seq) + 1), "/svc%d/items/%d?rare=%d" % (e, rng.randrange(1, 10**6), k))
with open(out + "/paths.txt", "w") as f:
    f.write("\n".join(seq) + "\n")
with open(out + "/locations.conf", "w") as f:
    for e in range(1, m + 1):
        f.write("    location /svc%d/ {\n      default_type application/json;\n" % e)
        for k, (re_, status, body, _) in enumerate(rare_def):
            if re_ == e:
                f.write("      if ($arg_rare = %d) { return %d '%s'; }\n" % (k, status, body))
        f.write("      return 200 '%s';\n    }\n" % main_body(e))
endpoints = set(p.split("/")[1] for p in seq)
print(len(seq), len(endpoints), len(endpoints) + rare, nrare)
EOF
)
read -r t_requests t_endpoints t_classes t_rare <<<"$truth"
log "traffic: $t_requests requests, $t_endpoints endpoints, $t_classes classes by construction ($RARE rare ones in $t_rare requests)"

up_port=$(free_port)
replay_port=$(free_port)
start_nginx upstream "  log_format uri '\$uri';
  server {
    listen 127.0.0.1:$up_port;
    include $tmp/locations.conf;
    location = / { return 204; }
  }
  server {
    listen 127.0.0.1:$replay_port;
    access_log $tmp/replay.log uri;
    include $tmp/locations.conf;
  }"
UP=http://127.0.0.1:$up_port
REPLAY_UP=http://127.0.0.1:$replay_port
wait_http "$UP/svc1/items/1"
wait_http "$REPLAY_UP/svc1/items/1"
: >"$tmp/replay.log"

# send NAME URL: the whole sequence to URL, curl --parallel; the status codes go to
# $tmp/codes-NAME (one a line, 000 for a failed transfer).
send() {
  awk -v u="$2" '{print "url = \"" u $0 "\""; print "output = \"/dev/null\""}' "$tmp/paths.txt" >"$tmp/curl-$1.cfg"
  curl -s --parallel --parallel-max "$PARALLEL" -w '%{http_code}\n' -K "$tmp/curl-$1.cfg" >"$tmp/codes-$1" 2>/dev/null || true
}
# answers NAME: "N answers, M not 200, F failed" of the last send NAME.
answers() {
  awk '{n++} $1 != "200" && $1 != "000" {o++} $1 == "000" {f++} END {printf "%d answers, %d not 200, %d failed", n, o, f}' "$tmp/codes-$1"
}
# classes NAME: the class table of start_doppel NAME's session.
classes() {
  "$DOPPEL" --store "$tmp/doppel-$1/store" sessions classes "bench-$NAME-$1-$$" >"$tmp/classes-$1.txt"
}

# analyze.py covered FULL REC: "covered<TAB>total<TAB>missed" (classes of the class table FULL
# with an envelope in REC; those without, each with its requests in FULL). analyze.py tvd REC|REPLAY_LOG [top]: the total variation distance between
# the endpoint-template mix of $tmp/paths.txt and that of a class table (its MIX column: the
# shares of the requests each class stood for, printed to 0.01 %) or of a file of paths (a replay's access log); "top" adds the 5 hottest
# endpoints' shares in both. Only /svc... counts: start_doppel's readiness check (GET /, 204)
# is recorded too and is not part of the traffic. analyze.py weights JSONL: Σ 1/p over a
# session's envelopes (what they stand for: the requests, were the p right) and the heaviest
# envelope's share of it.
cat >"$tmp/analyze.py" <<'EOF'
import collections, json, re, sys
def template(path):
    return "/".join("{id}" if re.fullmatch(r"[0-9]+", seg) else seg for seg in path.split("?")[0].split("/"))
def table(name):  # class -> (envelopes, mix %)
    rows = {}
    for line in open(name):
        f = line.split()
        if len(f) >= 10 and f[1].endswith("%") and f[5].isupper() and f[6].startswith("/svc"):
            rows[" ".join(f[5:9])] = (int(f[0]), float(f[2].rstrip("%")))
    return rows
def mix(name):
    m = collections.Counter()
    if name.endswith(".txt") and "classes-" in name:
        for cls, (_, share) in table(name).items():
            m[cls.split()[1]] += share
    else:
        for line in open(name):
            if line.startswith("/svc"):
                m[template(line.strip())] += 1
    total = sum(m.values())
    return {k: v / total for k, v in m.items()} if total else {}
if sys.argv[1] == "weights":  # a JSON Lines export: "Σ 1/p, the heaviest envelope's share of it"
    w = [1 / json.loads(line)["inclusion_probability"] for line in open(sys.argv[2]) if line.strip()]
    print("%.0f\t%.1f" % (sum(w), 100 * max(w) / sum(w)) if w else "?\t?")
elif sys.argv[1] == "covered":
    full, rec = table(sys.argv[2]), table(sys.argv[3])
    missed = ["%s (%d)" % (c, full[c][0]) for c in sorted(full) if c not in rec]
    print("%d\t%d\t%s" % (len(full) - len(missed), len(full), "; ".join(missed) or "none"))
else:
    truth, other = mix(sys.argv[2]), mix(sys.argv[3])
    if not other:
        print("?")
        sys.exit()
    tvd = 0.5 * sum(abs(truth.get(k, 0) - other.get(k, 0)) for k in set(truth) | set(other))
    out = "%.4f" % tvd
    if sys.argv[4:] == ["top"]:
        out += "\t" + "; ".join("%s %.2f %% → %.2f %%" % (k, 100 * v, 100 * other.get(k, 0))
                                for k, v in sorted(truth.items(), key=lambda kv: -kv[1])[:5])
    print(out)
EOF
analyze() { python3 "$tmp/analyze.py" "$@"; }

# ---------------------------------------------------------------- the traffic's classes
start_doppel full --sample 100
send full "$rec_url"
stop_doppel full
full_summary=$rec_summary
full_answers=$(answers full)
classes full
IFS=$'\t' read -r _ full_classes _ <<<"$(analyze covered "$tmp/classes-full.txt" "$tmp/classes-full.txt")"
log "full recording: $full_summary; $full_answers; $full_classes classes"

# ---------------------------------------------------------------- rounds
declare -a ROWS=() REPLAY_ROWS=()
cov_list="" uni_list="" tvd_list="" ht_list="" uni_ht_list="" cpu_list=""
for round in $(seq "$ROUNDS"); do
  start_doppel "uniform$round" --sample "$BUDGET"; u_pid=$rec_pid; u_url=$rec_url
  start_doppel "coverage$round" --sample-mode coverage --sample-budget "$BUDGET%"; c_pid=$rec_pid; c_url=$rec_url
  load=$(wait_load)
  log "round $round: the sequence to uniform and coverage at once (load $load)"
  u0=$(cpu_ticks "$u_pid"); c0=$(cpu_ticks "$c_pid")
  send "uniform$round" "$u_url" & w=$!
  send "coverage$round" "$c_url"; wait "$w"
  u1=$(cpu_ticks "$u_pid"); c1=$(cpu_ticks "$c_pid")
  rec_pid=$c_pid; stop_doppel "coverage$round"; c_summary=$rec_summary
  c_classes_line=$(grep '^classes:' "$tmp/doppel-coverage$round/stdout" || echo "no classes line")
  rec_pid=$u_pid; stop_doppel "uniform$round"; u_summary=$rec_summary
  classes "uniform$round"; classes "coverage$round"
  IFS=$'\t' read -r u_cov _ _ <<<"$(analyze covered "$tmp/classes-full.txt" "$tmp/classes-uniform$round.txt")"
  IFS=$'\t' read -r c_cov _ c_missed <<<"$(analyze covered "$tmp/classes-full.txt" "$tmp/classes-coverage$round.txt")"
  u_pct=$(bench_calc %.2f '100 * a / b' a="$u_cov" b="$full_classes")
  c_pct=$(bench_calc %.2f '100 * a / b' a="$c_cov" b="$full_classes")
  u_cpu=$(bench_calc %.1f 't * 1e6 / hz / n' t=$((u1 - u0)) hz="$clk_tck" n="$REQUESTS")
  c_cpu=$(bench_calc %.1f 't * 1e6 / hz / n' t=$((c1 - c0)) hz="$clk_tck" n="$REQUESTS")
  ratio=$(bench_ratio "$c_cpu" "$u_cpu" %.3f)
  uni_list+="$u_pct "; cov_list+="$c_pct "; cpu_list+="$ratio "
  ROWS+=("| $round | $u_cov ($u_pct %) | $c_cov ($c_pct %) | $c_missed | $u_cpu | $c_cpu | ${ratio}× | $load | uniform: $u_summary; $(answers "uniform$round") | coverage: $c_summary; $c_classes_line; $(answers "coverage$round") |")
  log "round $round: classes covered uniform $u_cov, coverage $c_cov of $full_classes; CPU µs/request uniform $u_cpu, coverage $c_cpu (${ratio}×)"

  # The coverage session replayed with --reweight; what it sent is the log's new lines.
  before=$(wc -l <"$tmp/replay.log")
  "$DOPPEL" --store "$tmp/doppel-coverage$round/store" replay --session "bench-$NAME-coverage$round-$$" \
    --target "$REPLAY_UP" --reweight --max --no-diff --no-progress --concurrency "$PARALLEL" \
    >"$tmp/replay$round.out" 2>&1 || log "round $round: replay exited with $? (see $tmp/replay$round.out)"
  tail -n +"$((before + 1))" "$tmp/replay.log" >"$tmp/replay$round.paths"
  sent=$(wc -l <"$tmp/replay$round.paths")
  IFS=$'\t' read -r tvd top < <(analyze tvd "$tmp/paths.txt" "$tmp/replay$round.paths" top)
  "$DOPPEL" --store "$tmp/doppel-coverage$round/store" export --session "bench-$NAME-coverage$round-$$" \
    --format jsonl --out - >"$tmp/coverage$round.jsonl" 2>"$tmp/export$round.err"
  IFS=$'\t' read -r sum_w heaviest < <(analyze weights "$tmp/coverage$round.jsonl")
  ht=$(analyze tvd "$tmp/paths.txt" "$tmp/classes-coverage$round.txt")
  uni_ht=$(analyze tvd "$tmp/paths.txt" "$tmp/classes-uniform$round.txt")
  tvd_list+="$tvd "; ht_list+="$ht "; uni_ht_list+="$uni_ht "
  REPLAY_ROWS+=("| $round | $sent | $tvd | $ht | $uni_ht | $sum_w | $heaviest % | $top |")
  log "round $round: replay --reweight sent $sent, TVD $tvd (the class table's MIX: $ht; uniform sample's mix: $uni_ht)"
done

# ---------------------------------------------------------------- report
m_cov=$(bench_mean "$cov_list" %.2f)
m_uni=$(bench_mean "$uni_list" %.2f)
m_tvd=$(bench_mean "$tvd_list" %.4f)
m_ht=$(bench_mean "$ht_list" %.4f)
m_uni_ht=$(bench_mean "$uni_ht_list" %.4f)
m_cpu=$(bench_mean "$cpu_list" %.3f)
min_cov=$(printf '%s\n' $cov_list | sort -g | head -1)
max_tvd=$(printf '%s\n' $tvd_list | sort -g | tail -1)
max_cpu=$(printf '%s\n' $cpu_list | sort -g | tail -1)
section=$tmp/section.md
{
  echo "<!-- coverage:begin -->"
  echo "## Coverage sampling"
  echo
  run_header " (REQUESTS=$REQUESTS, ENDPOINTS=$ENDPOINTS, RARE=$RARE, ZIPF_S=$ZIPF_S, SEED=$SEED, BUDGET=$BUDGET, ROUNDS=$ROUNDS, PARALLEL=$PARALLEL)" "CPU is compared per request (the recorder's user + system CPU time over the same request sequence, divided by its $REQUESTS requests), which depends less on that competition than throughput does; the two recorders of a round get the sequence at the same time, so the load weighs on both alike."
  echo
  echo "Traffic, generated once with seed $SEED: $t_requests requests to $t_endpoints endpoints \`/svcN/items/ID\` (ID random digits: template \`/svcN/items/{id}\`) with Zipf-distributed frequencies (exponent $ZIPF_S), and $RARE rare classes on random endpoints sent 1–5 times each at random positions ($t_rare requests in all): 404, 500, 503, 429, 400 or 409 with an error body of its own, or 200 with a response shape of its own. By construction $t_classes classes; the \`--sample 100\` recording of the sequence has $full_classes (\`doppel sessions classes\`: method, template, status, shape) — the traffic's classes below — $full_answers; $full_summary. Upstream = nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), 1 worker, a generated location per endpoint (a JSON body whose key set depends on N, an \`if (\$arg_rare = K) { return STATUS '...'; }\` per rare class). Client: \`curl --parallel --parallel-max $PARALLEL -K FILE\` ($(curl --version | head -1 | cut -d' ' -f1-2)), every path once, in order. Recorders: \`doppel record --threads 1\` with \`--sample $BUDGET\` (uniform) or \`--sample-mode coverage --sample-budget $BUDGET%\` (coverage), each with a fresh store (no class history)."
  echo
  echo "### Class coverage and CPU per request"
  echo
  echo "| round | uniform: classes with ≥ 1 envelope (of $full_classes) | coverage: classes with ≥ 1 envelope | classes coverage missed (requests in the traffic) | uniform CPU µs/request | coverage CPU µs/request | coverage/uniform CPU | load before | uniform recorder | coverage recorder |"
  echo "|---|---:|---:|---|---:|---:|---:|---|---|---|"
  for row in "${ROWS[@]}"; do echo "$row"; done
  echo
  echo "### Endpoint mix of \`doppel replay --reweight\`"
  echo
  echo "Each round's coverage session replayed with \`doppel replay --reweight --max --no-diff --concurrency $PARALLEL\` to a second server block of the upstream that logs each request's \`\$uri\`; the log's paths, as endpoint templates, against the traffic's: total variation distance ½ Σ |p_i − q_i| over the $t_endpoints templates. \`--reweight\` sends each class as many times as the recorder counted it (the session record's class counts), spread over the class's envelopes by 1/p. For reference: the TVD of the class table's \`MIX\` column (each class's share of the requests it stood for, printed to 0.01 %, which is most of its distance), and that of the uniform sample's own mix (sampling noise alone at this sample size); and, from \`doppel export --format jsonl\` of the coverage session, the sum of its envelopes' 1/p (what 1/p weights alone would stand for: $REQUESTS were they exact, plus the readiness check) and the largest single 1/p as a share of that sum."
  echo
  echo "| round | requests the replay sent | TVD replay vs traffic | TVD of the class table's MIX vs traffic | TVD uniform sample's mix vs traffic | coverage sample's Σ 1/p (of $REQUESTS requests) | heaviest envelope's share of Σ 1/p | the 5 hottest endpoints: traffic → replay |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for row in "${REPLAY_ROWS[@]}"; do echo "$row"; done
  echo
  echo "### Verdict"
  echo
  echo "| measure | value (mean of $ROUNDS rounds) | worst round | target | verdict |"
  echo "|---|---:|---:|---:|---|"
  echo "| class coverage, coverage mode at $BUDGET % | $m_cov % | $min_cov % | ≥ 99 % | $(bench_verdict "$m_cov" ">=" 99) |"
  echo "| class coverage, uniform at $BUDGET % (reference) | $m_uni % | | | |"
  echo "| TVD of the \`--reweight\` replay's endpoint mix vs the traffic's | $m_tvd | $max_tvd | ≤ 0.02 | $(bench_verdict "$m_tvd" "<=" 0.02) |"
  echo "| TVD of the class table's MIX (reference) | $m_ht | | | |"
  echo "| TVD of the uniform sample's mix (reference) | $m_uni_ht | | | |"
  echo "| recorder CPU per request, coverage / uniform | ${m_cpu}× | ${max_cpu}× | ≤ 1.1× | $(bench_verdict "$m_cpu" "<=" 1.1) |"
  echo
  echo "**Verdict: class coverage at a $BUDGET % budget ${m_cov} % with coverage sampling vs ${m_uni} % uniform — $(bench_verdict "$m_cov" ">=" 99) (target ≥ 99 %); endpoint mix of the reweighted replay, TVD ${m_tvd} — $(bench_verdict "$m_tvd" "<=" 0.02) (target ≤ 0.02); recorder CPU per request ${m_cpu}× uniform's — $(bench_verdict "$m_cpu" "<=" 1.1) (target ≤ 1.1×).**"
  echo "<!-- coverage:end -->"
} >"$section"

cat "$section"
if [[ -z "${NO_RESULTS:-}" ]]; then
  replace_results_section coverage "$section" "$results"
  log "updated $results"
fi
