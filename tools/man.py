#!/usr/bin/env python3
"""man.py: the man pages dcr(1), dcrd(8) and dcr-room.json(5) from one source.

The --help texts of the built programs are the SYNOPSIS and the
COMMANDS/OPTIONS sections, copied verbatim; docs/ pages (markdown) are the
rest. Nothing is written by hand twice, so the pages cannot drift from
--help or docs/: the build makes them (tools/CMakeLists.txt), and
`man.py --check` (a ctest) runs --help again and checks that every help
text stands verbatim in the page, and every heading of the docs page it
came from too. Python 3 standard library only.

Usage:
  man.py --dcr PATH --dcrd PATH --docs DIR --out DIR [--date YYYY-MM-DD]
  man.py --check --dcr PATH --dcrd PATH --docs DIR --out DIR [--inject TEXT]
(--inject adds TEXT to dcr's help before checking: the check must fail.)
"""
import argparse
import os
import re
import subprocess
import sys

# dcr's commands with a --help of their own, in the order of `dcr --help`.
DCR_COMMANDS = ["keygen", "whoami", "room", "join", "provision", "deprovision", "datasets",
                "stats", "run", "status", "result", "logs", "data", "dev", "request", "admin",
                "audit", "mount", "umount"]


def run_help(argv):
    p = subprocess.run(argv + ["--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=dict(os.environ, DCR_SOCKET="", LC_ALL="C"))
    text = p.stdout if p.stdout.strip() else p.stderr
    if p.returncode != 0 or not text.strip():
        sys.exit("man.py: %s --help: exit %d, %r" % (" ".join(argv), p.returncode, text[:200]))
    return text.rstrip("\n") + "\n"


def esc(s):
    """Text for roff: backslashes, and dashes as \\- (so --opt copies)."""
    s = s.replace("\\", "\\e").replace("-", "\\-")
    # non-ASCII as \[uXXXX], so any troff reads the page
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in s)


def unesc(s):
    s = re.sub(r"\\\[u([0-9A-F]{4,6})\]", lambda m: chr(int(m.group(1), 16)), s)
    return s.replace("\\-", "-").replace("\\e", "\\")


def line_safe(s):
    """A line that roff would take for a request is protected with \\&."""
    if s.startswith(".") or s.startswith("'"):
        return "\\&" + s
    return s


def verbatim(text):
    out = [".PP", ".nf", ".ft CR"]
    for ln in text.rstrip("\n").split("\n"):
        out.append(line_safe(esc(ln)) if ln.strip() else "")
    out += [".ft R", ".fi"]
    # an empty line inside .nf is kept by roff, but man-db warns: use .sp
    return "\n".join(".sp" if ln == "" else ln for ln in out)


def inline(s):
    """Markdown inline markup to roff: `code`, **bold**, *em*, [text](url)."""
    s = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1", s)
    parts = re.split(r"(`[^`]*`)", s)
    out = []
    for p in parts:
        if len(p) >= 2 and p.startswith("`") and p.endswith("`"):
            out.append("\\fB" + esc(p[1:-1]) + "\\fR")
        else:
            p = esc(p)
            p = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", p)
            p = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\\fI\1\\fR", p)
            out.append(p)
    return "".join(out)


def markdown(md, top_level=2):
    """A markdown page (the subset docs/ uses) to roff. Headings of level
    top_level become .SH, deeper ones .SS; the page's title is dropped."""
    out = []
    lines = md.split("\n")
    i = 0
    para = []

    def flush():
        if para:
            out.append(".PP")
            out.append(line_safe(inline(" ".join(x.strip() for x in para))))
            para.clear()

    while i < len(lines):
        ln = lines[i]
        m = re.match(r"^(#+)\s+(.*)$", ln)
        if ln.startswith("```"):
            flush()
            i += 1
            block = []
            while i < len(lines) and not lines[i].startswith("```"):
                block.append(lines[i])
                i += 1
            out.append(verbatim("\n".join(block)))
        elif m:
            flush()
            level = len(m.group(1))
            title = re.sub(r"`", "", m.group(2))
            if level < top_level:
                pass
            elif level == top_level:
                out.append('.SH "%s"' % esc(title.upper()))
            else:
                out.append('.SS "%s"' % esc(title))
        elif ln.startswith("|"):
            flush()
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.match(r"^\|[-| :]+\|$", lines[i]):
                    cells = [c.strip().replace("`", "") for c in lines[i].strip("|").split("|")]
                    block.append("  ".join(cells))
                i += 1
            out.append(verbatim("\n".join(block)))
            continue
        elif re.match(r"^\s*([-*]|\d+\.)\s+", ln):
            flush()
            item = [re.sub(r"^\s*([-*]|\d+\.)\s+", "", ln)]
            i += 1
            while i < len(lines) and lines[i].strip() and lines[i].startswith("  ") \
                    and not re.match(r"^\s*([-*]|\d+\.)\s+", lines[i]):
                item.append(lines[i].strip())
                i += 1
            out.append(".IP \\(bu 2")
            out.append(line_safe(inline(" ".join(item))))
            continue
        elif not ln.strip():
            flush()
        else:
            para.append(ln)
        i += 1
    flush()
    return "\n".join(out)


def section_of(md, title):
    """The text of '## title' up to the next '## ' heading."""
    m = re.search(r"^## " + re.escape(title) + r"\s*\n(.*?)(?=^## |\Z)", md, re.S | re.M)
    if not m:
        sys.exit("man.py: no section '## %s'" % title)
    return "## " + title + "\n" + m.group(1)


def header(name, sec, date, title):
    return "\n".join([
        '.\\" Generated by tools/man.py from --help and docs/: do not edit.',
        '.TH %s %s "%s" "dcr" "%s"' % (name.upper().replace("-", "\\-"), sec, date, title),
        ".SH NAME",
    ])


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def helps(a, inject=None):
    """{page: [(title, help text)]} from the programs."""
    dcr_main = run_help([a.dcr])
    if inject:
        dcr_main += inject + "\n"
    dcr = [("dcr", dcr_main)] + [("dcr " + c, run_help([a.dcr, c])) for c in DCR_COMMANDS]
    return {"dcr.1": dcr, "dcrd.8": [("dcrd", run_help([a.dcrd]))]}


def synopsis(text):
    """The usage lines at the top of a help text."""
    out = []
    for ln in text.split("\n"):
        if not ln.strip():
            break
        out.append(re.sub(r"^usage: ", "", ln))
    return "\n".join(out)


def pages(a, date):
    h = helps(a)
    docs = a.docs
    cli = read(os.path.join(docs, "cli.md"))
    daemon = read(os.path.join(docs, "daemon.md"))
    ops = read(os.path.join(docs, "operations.md"))
    room = read(os.path.join(docs, "room-format.md"))
    res = {}

    dcr = [header("dcr", "1", date, "User Commands"),
           "dcr \\- data clean rooms: the command-line client",
           ".SH SYNOPSIS", verbatim(synopsis(h["dcr.1"][0][1])),
           ".SH DESCRIPTION",
           ".PP",
           "dcr makes identities, creates and publishes rooms, provisions data, "
           "runs computations, reads results, audits a room's log and mounts a "
           "room as a filesystem, talking to \\fBdcrd\\fR(8) on a unix socket or over TLS. "
           "The room definition is described in \\fBdcr\\-room.json\\fR(5).",
           ".SH COMMANDS"]
    for title, text in h["dcr.1"]:
        dcr.append('.SS "%s"' % esc(title))
        dcr.append(verbatim(text))
    dcr.append(markdown(cli))
    dcr += [".SH SEE ALSO", "\\fBdcrd\\fR(8), \\fBdcr\\-room.json\\fR(5), "
            "/usr/share/doc/dcr/"]
    res["dcr.1"] = dcr

    dd = [header("dcrd", "8", date, "System Administration"),
          "dcrd \\- the dcr clean room host (daemon)",
          ".SH SYNOPSIS", verbatim(synopsis(h["dcrd.8"][0][1])),
          ".SH OPTIONS", verbatim(h["dcrd.8"][0][1]),
          ".SH DESCRIPTION", markdown(daemon),
          markdown(section_of(ops, "Install as a service")),
          ".SH SEE ALSO", "\\fBdcr\\fR(1), \\fBdcr\\-room.json\\fR(5), "
          "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)"]
    res["dcrd.8"] = dd

    rm = [header("dcr-room.json", "5", date, "File Formats"),
          "dcr\\-room.json \\- the room definition of dcr (format dcr.room/1)",
          ".SH DESCRIPTION",
          markdown(room),
          ".SH SEE ALSO", "\\fBdcr\\fR(1), \\fBdcrd\\fR(8)"]
    res["dcr-room.json.5"] = rm
    return {k: "\n".join(v) + "\n" for k, v in res.items()}


def unroff(page):
    """The text of the verbatim blocks and the headings of a page."""
    blocks, cur, heads = [], None, []
    for ln in page.split("\n"):
        if ln == ".nf":
            cur = []
        elif ln == ".fi":
            blocks.append("\n".join(cur))
            cur = None
        elif cur is not None:
            if ln in (".ft CR", ".ft R"):
                continue
            ln = "" if ln == ".sp" else ln
            if ln.startswith("\\&"):
                ln = ln[2:]
            cur.append(unesc(ln))
        elif ln.startswith(".SH ") or ln.startswith(".SS "):
            heads.append(unesc(ln[4:].strip('"')))
    return blocks, heads


def check(a):
    bad = []
    h = helps(a, a.inject)
    docmap = {"dcr.1": ["cli.md"], "dcrd.8": ["daemon.md"], "dcr-room.json.5": ["room-format.md"]}
    for page in ("dcr.1", "dcrd.8", "dcr-room.json.5"):
        path = os.path.join(a.out, page)
        if not os.path.exists(path):
            bad.append("%s: missing" % path)
            continue
        blocks, heads = unroff(read(path))
        for title, text in h.get(page, []):
            if text.rstrip("\n") not in blocks:
                bad.append("%s: the --help of %s is not in the page as it is now "
                           "(rebuild, or the page is stale)" % (page, title))
        lowered = [x.lower() for x in heads]
        for doc in docmap[page]:
            for m in re.finditer(r"^##+\s+(.*)$", read(os.path.join(a.docs, doc)), re.M):
                t = m.group(1).replace("`", "")
                if t.lower() not in lowered:
                    bad.append("%s: heading \"%s\" of docs/%s missing" % (page, t, doc))
    for b in bad:
        print("man.py --check: " + b, file=sys.stderr)
    if bad:
        return 1
    print("man.py --check: dcr.1, dcrd.8 and dcr-room.json.5 agree with --help and docs/")
    return 0


def main():
    ap = argparse.ArgumentParser(description="dcr's man pages from --help and docs/")
    ap.add_argument("--dcr", required=True)
    ap.add_argument("--dcrd", required=True)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--date", default=None)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--inject", default=None)
    a = ap.parse_args()
    if a.check:
        return check(a)
    date = a.date
    if not date:
        # reproducible: the date of the newest docs page used, else SOURCE_DATE_EPOCH
        import time
        t = os.environ.get("SOURCE_DATE_EPOCH")
        if t is None:
            t = max(os.path.getmtime(os.path.join(a.docs, f))
                    for f in ("cli.md", "daemon.md", "operations.md", "room-format.md"))
        date = time.strftime("%Y-%m-%d", time.gmtime(int(float(t))))
    os.makedirs(a.out, exist_ok=True)
    for name, text in pages(a, date).items():
        tmp = os.path.join(a.out, name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(a.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
