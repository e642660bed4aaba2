#!/usr/bin/env python3
"""pick_new.py: chooses the few fuzzer-found inputs worth storing.

Usage: pick_new.py [-n MAX] FUZZER CORPUS_DIR FOUND_DIR [extra libFuzzer args]

The code coverage (PCs) of the stored corpus CORPUS_DIR and of a fuzzing
run's output FOUND_DIR come from libFuzzer's merge control file (one
-merge=1 run each; a control file lists per input only the PCs no earlier
input of that run reached, smallest inputs first). An input of FOUND_DIR
is stored when it reaches PCs the stored corpus does not; it is copied
into CORPUS_DIR under its SHA-1 name. Edge coverage only (not libFuzzer's
finer features), and at most MAX inputs (default 40), those reaching the
most new PCs first, so the stored corpus grows by dozens, not thousands."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile


def coverage(fuzzer, d, extra):
    """[(path, set of PC indices first reached by that input)]"""
    with tempfile.TemporaryDirectory() as tmp:
        cf = os.path.join(tmp, "control")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.run([fuzzer, "-merge=1", "-merge_control_file=" + cf, out, d] + extra,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(cf) as f:
            lines = f.read().split("\n")
    n = int(lines[0])
    files = lines[2:2 + n]
    cov = {}
    for ln in lines[2 + n:]:
        parts = ln.split()
        if parts and parts[0] == "COV":
            cov[int(parts[1])] = set(parts[2:])
    return [(files[i], cov.get(i, set())) for i in range(n)]


def main():
    args = sys.argv[1:]
    nmax = 40
    if args[0] == "-n":
        nmax = int(args[1])
        args = args[2:]
    fuzzer, corpus, found = args[:3]
    extra = args[3:]
    covered = set()
    for _, c in coverage(fuzzer, corpus, extra):
        covered |= c
    have = set(os.listdir(corpus))
    cand = [(len(c - covered), path) for path, c in coverage(fuzzer, found, extra)]
    cand = sorted((x for x in cand if x[0] > 0), key=lambda x: (-x[0], x[1]))[:nmax]
    added = 0
    for gain, path in cand:
        with open(path, "rb") as f:
            name = hashlib.sha1(f.read()).hexdigest()
        if name not in have:
            shutil.copy(path, os.path.join(corpus, name))
            added += 1
    print("%s: %d inputs added, reaching %d PCs the stored corpus did not" %
          (corpus, added, sum(g for g, _ in cand)))


if __name__ == "__main__":
    main()
