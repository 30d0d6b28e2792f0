"""Long fuzz run over every file kind rlzoo reads back (issue 12): ``python benchmarks/fuzz_files.py [-n 10000]``.

Saves real files (model zips of the 9 algorithms and one with a schedule and noises, VecNormalize
statistics, plain / prioritized replay buffers, an ACER memory, run.json and config.yml of a run
folder), then loads mutated copies: flipped bytes, truncations, JSON / YAML values swapped for tags
naming code (``{"__object__": "rlzoo.fileio.atomic_write_bytes", ...}``, ``{"__class__": "os.system"}``),
lists, huge numbers and deep nesting, rewritten safetensors and ``.npy`` headers. After the random
cases it puts a code-naming tag at every JSON location of every model file (each tag: --all-tags).

Each load must succeed or raise the documented error (ModelFileError; ZooError for run folders) with
a one-line message, within 20 s, without opening a file for writing, importing a module or starting a
process (an audit hook watches). Prints the counts; exit status 1 when anything else happened.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from safe_files_kit import (SENTINEL_NAME, Guard, build_files, json_locations, json_put, loaders,  # noqa: E402
                            mutate, payloads, run_case)


def _case_path(kind: str, original: Path, root: Path, i: int) -> Path:
    """Where case ``i`` is written: a copy of its run folder for run-folder files, else a file of its own."""
    if kind.startswith("run:"):
        case = root / "cases" / f"logs{i}" / "a2c" / "CartPole-v1_1"
        case.mkdir(parents=True)
        for other in original.parent.iterdir():
            if other.is_file():
                (case / other.name).write_bytes(other.read_bytes())
        return case / original.name
    (root / "cases").mkdir(exist_ok=True)
    return root / "cases" / f"{i}_{original.name}"


def _tag_attacks(files: dict, load: dict, tags: list, guard: Any, counts: collections.Counter, problems: list[str],
                 root: Path, all_tags: bool) -> None:
    """Put a code-naming tag at every JSON location of every model file (one tag each, all with ``all_tags``)."""
    for kind, path in files.items():
        if not kind.startswith("model:"):
            continue
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        for member, raw in members.items():
            if not member.endswith(".json"):
                continue
            for where in list(json_locations(json.loads(raw))):
                for value in (tags if all_tags else [tags[counts["attacks"] % len(tags)]]):
                    doc = json_put(json.loads(raw), where, value)
                    bad = root / "attack.zip"
                    with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                        for n, d in members.items():
                            zf.writestr(n, json.dumps(doc).encode() if n == member else d)
                    outcome, detail = run_case(kind, load[kind], bad, guard)
                    counts["attacks"] += 1
                    counts[f"attacks_{outcome}"] += 1
                    if outcome not in ("ok", "refused"):
                        problems.append(f"attack {kind} {member} {where}: {outcome}: {detail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--cases", type=int, default=10_000, help="random mutation cases")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-attacks", action="store_true", help="skip the tag attacks")
    parser.add_argument("--all-tags", action="store_true", help="every tag at every location (9x the attacks)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rlzoo_fuzz_"))
    files = build_files(root / "files")
    load = loaders(files)
    import rlzoo.zoo.cli  # noqa: F401  (imported before the guard is armed, like the other modules)
    for kind, path in files.items():
        load[kind](path)
    sentinel = root / "sentinel"
    sentinel.mkdir()
    guard = Guard.get()
    values = payloads(sentinel)
    counts: collections.Counter = collections.Counter()
    by_kind: dict = collections.defaultdict(collections.Counter)
    problems: list[str] = []
    t0 = time.time()

    def record(kind: str, outcome: str, detail: str, what: str) -> None:
        counts[outcome] += 1
        by_kind[kind][outcome] += 1
        if outcome not in ("ok", "refused") and len(problems) < 50:
            problems.append(f"{kind} {what}: {outcome}: {detail}")
            print("  !", problems[-1][:400], flush=True)

    rng = random.Random(args.seed)
    kinds = sorted(files)
    for i in range(args.cases):
        kind = kinds[i % len(kinds)]
        case_rng = random.Random(rng.getrandbits(64))
        data = mutate(kind, files[kind].read_bytes(), case_rng, values)
        path = _case_path(kind, files[kind], root, i)
        path.write_bytes(data)
        outcome, detail = run_case(kind, load[kind], path, guard)
        record(kind, outcome, detail, f"case {i}")
        if kind.startswith("run:"):
            for p in sorted(path.parent.iterdir()):
                p.unlink()
        else:
            path.unlink()
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} cases, {dict(counts)}, writes {len(guard.writes)}, imports {len(guard.imports)}, "
                  f"other {len(guard.other)}, {time.time() - t0:.0f} s", flush=True)

    if not args.no_attacks:  # code-naming tags at every JSON location of every model file (all with --all-tags)
        _tag_attacks(files, load, values[:9], guard, counts, problems, root, args.all_tags)
        print(f"tag attacks: {counts['attacks']} tried, {counts['attacks_refused']} refused with ModelFileError, "
              f"{counts['attacks_ok']} loaded (value not used or policy fell back to its rlzoo base), "
              f"writes {len(guard.writes)}, imports {len(guard.imports)}, processes/other {len(guard.other)}, "
              f"{time.time() - t0:.0f} s", flush=True)

    unexpected = counts["unexpected"] + counts["multiline"]
    print(f"cases tried: {args.cases} (+ {counts['attacks']} tag attacks)")
    print(f"loaded: {counts['ok']}, refused with the documented error: {counts['refused']}")
    print(f"unexpected exceptions: {unexpected} (multi-line messages: {counts['multiline']}), hangs: {counts['hang']}")
    print(f"writes: {len(guard.writes)}, imports: {len(guard.imports)}, processes/other: {len(guard.other)}, "
          f"sentinel touched: {(sentinel / SENTINEL_NAME).exists()}")
    for kind in kinds:
        print(f"  {kind:18s} {dict(by_kind[kind])}")
    for line in problems[:50] + guard.writes[:10] + guard.imports[:10] + guard.other[:10]:
        print("  !", line[:300])
    print(f"{time.time() - t0:.0f} s")
    bad = unexpected + counts["hang"] + len(guard.writes) + len(guard.imports) + len(guard.other)
    return 1 if bad or (sentinel / SENTINEL_NAME).exists() else 0


if __name__ == "__main__":
    sys.exit(main())
