#!/usr/bin/env python3
"""Expand testbed/matrix/scenarios.tsv into a run matrix for testbed/run-matrix.sh.

usage: make-matrix.py -o testbed/matrix/call4.tsv [--scenarios a,b] [--placer target/release/placer]
                      [--tag c4] [--placements fit,placer-aggressive]
Placements: fit (`--fit on`, nothing else), cpu-moe (`--cpu-moe`), hand (testbed/matrix/hand.tsv),
any of them with the suffix -lmnone (the same flags plus `-lm none`: CPU weights in pinned memory),
placer-aggressive / placer-moderate (`placer solve MODEL --host H --ctx C --json`, flags taken as
placer emits them, minus -m/-c which the runner sets), placer-decode (the aggressive profile solved
decode-weighted: `--gen CTX-PROMPT-1 --depth PROMPT`; the run's workload is the scenario's). Predictions placer printed are kept in
<output>.predictions.json, keyed by run id, for the report, with the binary placer wrote the command
for (`emitted_for`), the one it sized the buffers for (`solved_for`: `--tool llama-completion` when this
placer has `--tool`, else its default llama-server) and the one the testbed ran (`ran_with`:
llama-completion, which reserves n_batch logits in the compute buffer where llama-server reserves -np).

--tag T makes run ids "<scenario>--<placement>--T" (one tag per device call: c4, c5, …), so a new call
never overwrites a run of an earlier call in the same scenario directory. --placements keeps only
those placements of each scenario (in the order given).

The protocol (docs/testbed.md, "Protocol"): --repeats N interleaves the placements of each scenario in
one device call — fit, aggressive, moderate, fit, aggressive, moderate, … — N rounds, the order rotated
by one place each round (round 2 starts with the second placement), run ids "<scenario>--<placement>--T.rK".
--first-repeat K numbers the rounds from K, for a call that goes on in a second command on the same warm
machine. testbed/report.py pairs each run with the `--fit` run of its own round.

Placement `neighbourhood` expands into placer's aggressive placement moved a little (the optimality gap,
testbed/report.py): nb-ub<U> (the other -ub values), nb-cpu+1 / nb-cpu+2 (the experts of 1–2 more layers on
the CPU), nb-cpu-1 (of one layer fewer), nb-ts+1 / nb-ts-1 (one layer from one GPU to the other),
nb-cpufirst / nb-cpulast (the same number of CPU expert layers at the other position: the first or last
layers). Each is placed with the aggressive profile's other flags unchanged. The optional 9th column of scenarios.tsv is the
run's time box in seconds (the runner's TB_RUN_TIMEOUT otherwise).

The workload goes into the solve: `--prompt P --gen G` when this placer's `solve --help` lists them,
else `--depth P + G/2` (attention reads per generated token, averaged over the generation) and
`--prefill-weight P/G` (prompt tokens per generated token).
"""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER_SETS = {"-m", "--model", "-c", "--ctx-size"}


def rows(path):
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            yield line.rstrip("\n").split("\t")


def strip_runner_flags(argv):
    """Drop the program name and the flags the runner sets itself (-m, -c)."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if i == 0 and not a.startswith("-"):
            continue
        if a in RUNNER_SETS:
            skip = True
            continue
        out.append(a.replace('"', "").replace("'", ""))
    return out


_CACHE = {}


def tree_state():
    """Which placer solved: HEAD, and the solver/speed/calibration files that differed from it
    (helpers work in one tree; a release binary may hold uncommitted changes)."""
    if os.environ.get("PLACER_TREE"):
        # solved on the device, whose copy of the tree has no .git: the state as recorded here
        return json.loads(os.environ["PLACER_TREE"])
    root = os.path.join(HERE, "..")
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=root).stdout.rstrip("\n")  # noqa: E731
    try:
        dirty = git("status", "--short", "--", "src", "data/calibration.toml").splitlines()
        return {"head": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": [l[3:] for l in dirty]}
    except OSError:
        return {"head": "unknown (no git)", "uncommitted": []}


_SOLVE_HELP = {}


def solve_supports(placer, flag):
    if placer not in _SOLVE_HELP:
        r = subprocess.run([placer, "solve", "--help"], capture_output=True, text=True, timeout=60)
        _SOLVE_HELP[placer] = r.stdout
    return flag in _SOLVE_HELP[placer]


def solve_json(placer, model, host, ctx, prompt=0, gen=0, depth=None):
    """placer solve --json; with placer == "test", the library through tests/testbed_solve.rs
    (used while the solve subcommand did not exist yet; same solver, same profiles' margins)."""
    key = (placer, model, host, ctx, prompt, gen, depth)
    if key in _CACHE:
        return _CACHE[key]
    if placer == "test":
        cmd = ["cargo", "test", "-q", "--test", "testbed_solve", "--", "--ignored", "--nocapture"]
        env = dict(os.environ, TB_MODEL=model, TB_HOST=host, TB_CTX=str(ctx))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=os.path.join(HERE, ".."))
        line = next((l for l in r.stdout.splitlines() if l.startswith("TESTBED-JSON ")), None)
        if line is None:
            raise RuntimeError(f"tests/testbed_solve.rs gave no result: {r.stderr.strip()[-500:]}")
        cmd = [f"TB_MODEL={model} TB_HOST={host} TB_CTX={ctx}"] + cmd
        j = json.loads(line.split(" ", 1)[1])
    else:
        cmd = [placer, "solve", model, "--host", host, "--ctx", str(ctx), "--json"]
        if solve_supports(placer, "--tool"):
            # the testbed runs llama-completion, which reserves a whole ubatch of logits in the compute
            # buffer (n_outputs_max = n_batch) where llama-server reserves -np of them (call 5's OOMs)
            cmd += ["--tool", "llama-completion"]
        if gen and solve_supports(placer, "--prompt"):
            # the request itself; placer derives the depth (prompt + gen/2) and the prefill weight
            cmd += ["--prompt", str(prompt), "--gen", str(gen)]
            if depth is not None:
                cmd += ["--depth", str(depth)]
        else:
            if gen and solve_supports(placer, "--depth"):
                cmd += ["--depth", str(prompt + gen // 2)]
            if gen and solve_supports(placer, "--prefill-weight"):
                cmd += ["--prefill-weight", f"{prompt / gen:.1f}"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()[:500]}")
        j = json.loads(r.stdout)
    _CACHE[key] = (j, cmd)
    return j, cmd


def placer_flags(placer, model, host, ctx, profile, prompt=0, gen=0, depth=None):
    j, cmd = solve_json(placer, model, host, ctx, prompt, gen, depth)
    prof = find_profile(j, profile)
    if prof.get("infeasible"):
        raise RuntimeError(f"placer: infeasible: {json.dumps(prof['infeasible'])[:400]}")
    argv = prof.get("argv") or prof.get("flags") or prof.get("command")
    if isinstance(argv, str):
        argv = argv.split()
    return strip_runner_flags(argv), prof, cmd


def find_profile(j, name):
    profs = j.get("profiles", j) if isinstance(j, dict) else j
    if isinstance(profs, dict):
        if name in profs:
            return profs[name]
        profs = list(profs.values())
    for p in profs:
        if isinstance(p, dict) and name in (p.get("profile"), p.get("name"), p.get("kind")):
            return p
    raise KeyError(f"profile {name} not in placer solve --json output")


EXPERT_RE = r"ffn_(down|gate|up)_exps"


def n_layers(model):
    txt = open(os.path.join(HERE, "..", "models", f"{model}.toml")).read()
    return int(re.search(r"(?m)^n_layer\s*=\s*(\d+)", txt).group(1))


def flag_value(flags, name):
    return flags[flags.index(name) + 1] if name in flags and flags.index(name) + 1 < len(flags) else None


def with_flag(flags, name, value):
    out = list(flags)
    if name in out:
        out[out.index(name) + 1] = value
    else:
        out += [name, value]
    return out


def cpu_expert_layers(flags, nl):
    """(layers whose three expert tensors an `-ot …=CPU` rule sends to the CPU, the other -ot rules)."""
    rules = [r for r in (flag_value(flags, "-ot") or "").split(",") if r]
    full, rest = set(), []
    for r in rules:
        pat, _, buft = r.rpartition("=")
        hit = {i for i in range(nl) if buft == "CPU" and all(
            re.search(pat, f"blk.{i}.ffn_{k}_exps.weight") for k in ("down", "gate", "up"))}
        if hit:
            full |= hit
        else:
            rest.append(r)
    return full, rest


def with_cpu_layers(flags, layers, rest):
    rules = ([f"blk\\.({'|'.join(str(i) for i in sorted(layers))})\\.{EXPERT_RE}\\.=CPU"] if layers else []) + rest
    out = [a for a in flags]
    if "-ot" in out:
        i = out.index("-ot")
        del out[i:i + 2]
    return out + (["-ot", ",".join(rules)] if rules else [])


def neighbourhood(flags, model):
    """[(name, flags)]: placer's aggressive flags moved a little (see the module's docstring)."""
    nl = n_layers(model)
    out = []
    ub = int(flag_value(flags, "-ub") or 512)
    for u in (512, 1024, 2048):
        if u != ub:
            f = with_flag(flags, "-ub", str(u))
            if int(flag_value(f, "-b") or 2048) < u:
                f = with_flag(f, "-b", str(u))
            out.append((f"nb-ub{u}", f))
    cpu, rest = cpu_expert_layers(flags, nl)
    gpu = [i for i in range(nl) if i not in cpu]
    if gpu:
        # the GPU layers next to the CPU set first (the boundary the solver chose), else the last layers
        near = sorted(gpu, key=lambda i: min((abs(i - c) for c in cpu), default=nl - i))
        out.append(("nb-cpu+1", with_cpu_layers(flags, cpu | set(near[:1]), rest)))
        if len(near) > 1:
            out.append(("nb-cpu+2", with_cpu_layers(flags, cpu | set(near[:2]), rest)))
    if cpu:
        out.append(("nb-cpu-1", with_cpu_layers(flags, cpu - {max(cpu)}, rest)))
        k = len(cpu)
        for name, layers in (("nb-cpufirst", set(range(k))), ("nb-cpulast", set(range(nl - k, nl)))):
            if layers != cpu:
                out.append((name, with_cpu_layers(flags, layers, rest)))
    ts = flag_value(flags, "-ts")
    if ts and len(ts.split(",")) == 2:
        a, b = (int(float(x)) for x in ts.split(","))
        for name, (x, y) in (("nb-ts+1", (a + 1, b - 1)), ("nb-ts-1", (a - 1, b + 1))):
            if x > 0 and y > 0:
                out.append((name, with_flag(flags, "-ts", f"{x},{y}")))
    return out


def interleave(pairs, repeats, first):
    """[(scenario, placement, round)]: per scenario, `repeats` rounds of its placements, the order
    rotated by one place each round; scenarios one after the other (one model on disk at a time)."""
    if not repeats:
        return [(s, p, None) for s, p in pairs]
    by = {}
    for s, p in pairs:
        by.setdefault(s, []).append(p)
    out = []
    for s, pls in by.items():
        for r in range(repeats):
            k = (first + r - 1) % len(pls)
            out += [(s, p, first + r) for p in pls[k:] + pls[:k]]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--scenarios")
    ap.add_argument("--placer", default=os.path.join(HERE, "..", "target", "debug", "placer"))
    ap.add_argument("--tag", help="suffix of every run id: <scenario>--<placement>--TAG")
    ap.add_argument("--placements", help="only these placements, in this order")
    ap.add_argument("--runs", help="SCENARIO:PLACEMENT,… in this order (the call's run order; overrides --scenarios)")
    ap.add_argument("--repeats", type=int, default=0, help="interleave each scenario's placements in N rotated rounds")
    ap.add_argument("--first-repeat", type=int, default=1, help="number the rounds from K (a call continued on a warm machine)")
    a = ap.parse_args()
    want = a.scenarios.split(",") if a.scenarios else None
    pairs = [tuple(r.split(":", 1)) for r in a.runs.split(",")] if a.runs else None
    hand = {r[0]: r[1] for r in rows(os.path.join(HERE, "matrix", "hand.tsv"))}
    out, preds, problems = [], {}, []
    scen = {r[0]: r for r in rows(os.path.join(HERE, "matrix", "scenarios.tsv"))}
    if pairs is None:
        pairs = []
        for name in (want or list(scen)):
            todo = scen[name][7].split(",")
            if a.placements:
                todo = [p for p in a.placements.split(",") if p in todo]
            pairs += [(name, pl) for pl in todo]
    # `neighbourhood` stands for its variants, solved from the aggressive profile
    expanded = []
    for name, pl in pairs:
        if pl == "neighbourhood":
            s, model, host, solve_host, ctx, prompt, gen = scen[name][:7]
            try:
                base, _, _ = placer_flags(a.placer, model, solve_host, ctx, "aggressive", int(prompt), int(gen))
            except (RuntimeError, KeyError, ValueError, OSError, subprocess.TimeoutExpired) as e:
                problems.append(f"{name}--neighbourhood: {e}")
                continue
            expanded += [(name, f"{v}\t{' '.join(f)}") for v, f in neighbourhood(base, model)]
        else:
            expanded.append((name, pl))
    for name, pl, rnd in interleave(expanded, a.repeats, a.first_repeat):
        s, model, host, solve_host, ctx, prompt, gen, placements = scen[name][:8]
        tmo = scen[name][8] if len(scen[name]) > 8 else ""
        nb_flags = None
        if "\t" in pl:
            pl, nb_flags = pl.split("\t", 1)
        if True:
            tag = (a.tag or "") + (f".r{rnd}" if rnd is not None else "")
            run_id = f"{s}--{pl}" + (f"--{tag}" if tag else "")
            # "<placement>-lmnone": the same placement with `-lm none` (no mmap: llama.cpp puts the
            # CPU-resident weights in the first GPU's pinned host buffer, src/llama-model.cpp:
            # make_cpu_buft_list; llama-model-loader.cpp warns "tensor overrides to CPU are used with
            # mmap enabled - consider using --load-mode none for better performance")
            extra = []
            if pl.endswith("-lmnone"):
                pl, extra = pl[: -len("-lmnone")], ["-lm", "none"]
            if nb_flags is not None:
                flags = nb_flags.split()
            elif pl == "fit":
                flags = ["--fit", "on"]
            elif pl == "cpu-moe":
                flags = ["--cpu-moe"]
            elif pl == "defaults":
                flags = []
            elif pl == "hand":
                flags = hand[s].split()
            elif pl.startswith("placer-"):
                profile, sp, sg, sd = pl.split("-", 1)[1], int(prompt), int(gen), None
                if pl == "placer-decode":
                    # the aggressive profile solved decode-weighted: the generation fills the rest of
                    # the context and attention reads the prompt (what a long agentic conversation's turns
                    # look like once llama-server has the prefix cached); the run itself is unchanged
                    profile, sg, sd = "aggressive", int(ctx) - sp - 1, sp
                try:
                    flags, prof, cmd = placer_flags(a.placer, model, solve_host, ctx, profile, sp, sg, sd)
                    emitted = (prof.get("command") or "").split(" ", 1)[0] or None
                    solved_for = cmd[cmd.index("--tool") + 1] if "--tool" in cmd else "llama-server (placer's default)"
                    preds[run_id] = {"command": cmd, "profile": prof, "emitted_for": emitted,
                                     "solved_for": solved_for, "ran_with": "llama-completion", "placer_tree": tree_state()}
                except (RuntimeError, KeyError, ValueError, OSError, subprocess.TimeoutExpired) as e:
                    problems.append(f"{run_id}: {e}")
                    continue
            else:
                problems.append(f"{run_id}: unknown placement")
                continue
            if extra:
                # placer emits -lm none itself where CPU weights stream (solver prefer_pinned)
                flags = flags if "-lm" in flags else flags + extra
                pl = pl + "-lmnone"
            out.append("\t".join([run_id, model, host, ctx, prompt, gen, pl, " ".join(flags)] + ([tmo] if tmo else [])))
    with open(a.output, "w") as fh:
        fh.write("# run_id\tmodel\thost\tctx\tprompt\tgen\tplacement\tflags\t[timeout_s] (testbed/make-matrix.py)\n")
        fh.write("\n".join(out) + "\n")
    with open(a.output + ".predictions.json", "w") as fh:
        json.dump(preds, fh, indent=1)
    print(f"{len(out)} runs -> {a.output}")
    for p in problems:
        print("NOT IN MATRIX:", p, file=sys.stderr)


if __name__ == "__main__":
    main()
