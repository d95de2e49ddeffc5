#!/usr/bin/python3
"""make test-report: `tinyroute report` against the sample documents in
tests/report, checked in headless Chromium.

The page measures its own curves after layout (getTotalLength, getBBox) and
writes the numbers into the DOM; --dump-dom hands them back here, so the
checks are about what the browser drew, not about the HTML text. A
screenshot is then decoded (zlib + struct, no imaging library) to see the
curves' colours inside the plot area.

usage: test_report.py CLI WORKDIR     (CHROMIUM: the browser, default chromium)
Each run works in a fresh directory under WORKDIR, removed when all passed.
Prints PASS/FAIL lines, then "N passed, M failed"; exits 1 on any failure.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
import zlib
from html.parser import HTMLParser

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = os.path.abspath(sys.argv[1])
os.makedirs(sys.argv[2], exist_ok=True)
# Fresh per run: the overwrite checks need an --out that does not exist yet.
WORK = tempfile.mkdtemp(prefix="run-", dir=sys.argv[2])
CHROMIUM = os.environ.get("CHROMIUM", "chromium")
WIDTH = 1280
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS: " + name)
    else:
        failed += 1
        print("FAIL: " + name + (": " + detail if detail else ""))
    return ok


def report(src, out, *extra):
    return subprocess.run([CLI, "report", "--json", src, "--out", out, *extra],
                          capture_output=True, text=True)


# ---- a DOM tree from the serialised page ----

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.kids = tag, dict(attrs), parent, []

    def all(self, tag=None, cls=None, pred=None):
        for k in self.kids:
            if ((tag is None or k.tag == tag)
                    and (cls is None or cls in k.attrs.get("class", "").split())
                    and (pred is None or pred(k))):
                yield k
            yield from k.all(tag, cls, pred)

    def one(self, tag=None, cls=None, pred=None):
        return next(self.all(tag, cls, pred), None)

    def _content(self):
        out = []
        for piece in self.text_and_kids:
            out.append(piece if isinstance(piece, str) else piece._content())
        return "".join(out)


VOID = {"meta", "br", "link", "img", "input", "hr", "area", "base", "col", "embed", "source",
        "track", "wbr"}


class Tree(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.root.text_and_kids = []
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        n.text_and_kids = []
        self.cur.kids.append(n)
        self.cur.text_and_kids.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        n.text_and_kids = []
        self.cur.kids.append(n)
        self.cur.text_and_kids.append(n)

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text_and_kids.append(data)


def parse(html):
    t = Tree()
    t.feed(html)
    t.close()
    return t.root


def text(n):
    return n._content() if n is not None else None


# ---- Chromium ----

def chromium(url, *args):
    profile = tempfile.mkdtemp(dir=WORK)
    # Any attempt to reach the network resolves nowhere: the page must not need it.
    cmd = ["timeout", "60", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--user-data-dir=" + profile, "--no-first-run", "--disable-extensions",
           "--hide-scrollbars", "--force-device-scale-factor=1",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000", *args, url]
    try:
        return subprocess.run(cmd, capture_output=True, text=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dump_dom(path):
    r = chromium("file://" + os.path.abspath(path), "--window-size=%d,900" % WIDTH, "--dump-dom")
    return r.stdout if r.returncode == 0 else None


# ---- PNG ----

def png_rgb(path):
    """(width, height, rows): rows[y] is a bytes of RGB(A) samples."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, w = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in (2, 6) or interlace:
                raise ValueError("PNG kind not handled: depth %d type %d" % (depth, ctype))
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def hex_rgb(s):
    s = s.lstrip("#")
    return tuple(int(s[i:i + 2], 16) for i in (0, 2, 4))


# ---- the checks ----

def cli_checks(sample):
    out = os.path.join(WORK, "cli.html")
    r = report(sample, out)
    check("cli: renders the sample", r.returncode == 0 and os.path.getsize(out) > 0, r.stderr)
    before = open(out, "rb").read()
    r = report(sample, out)
    check("cli: refuses to overwrite without --force",
          r.returncode != 0 and "exists" in r.stderr and open(out, "rb").read() == before,
          r.stderr)
    os.utime(out, (0, 0))
    r = report(sample, out, "--force")
    check("cli: --force overwrites", r.returncode == 0 and os.stat(out).st_mtime > 0, r.stderr)

    r = report(os.path.join(WORK, "no-such.json"), os.path.join(WORK, "x.html"))
    check("cli: missing JSON file is an error",
          r.returncode == 1 and "no-such.json" in r.stderr
          and not os.path.exists(os.path.join(WORK, "x.html")), r.stderr)
    r = subprocess.run([CLI, "report", "--json", sample], capture_output=True, text=True)
    check("cli: --out is required", r.returncode == 2, "rc %d" % r.returncode)

    bad = [("invalid JSON", '{"datasets": [\n  {"name": "a",, }]}', "2:"),
           ("not an object", "[1, 2]", "not a JSON object"),
           ("no datasets", '{"tinyroute_version": "0.1.0"}', '"datasets"'),
           ("datasets not an array", '{"datasets": {"name": "a"}}', '"datasets"'),
           ("dataset not an object", '{"datasets": [3]}', "datasets[0]"),
           ("dataset without name", '{"datasets": [{"methods": []}]}', '"name"'),
           ("name not a string", '{"datasets": [{"name": 7, "methods": []}]}', '"name"'),
           ("dataset without methods",
            '{"datasets": [{"name": "a", "methods": []}, {"name": "b"}]}', 'datasets[1]')]
    for what, doc, needle in bad:
        src = os.path.join(WORK, "bad.json")
        dst = os.path.join(WORK, "bad.html")
        open(src, "w").write(doc)
        r = report(src, dst)
        check("cli: rejects " + what,
              r.returncode == 1 and needle in r.stderr and not os.path.exists(dst),
              "rc %d, stderr %r" % (r.returncode, r.stderr))


def static_checks(html_path):
    html = open(html_path, encoding="utf-8").read()
    root = parse(html)
    ext = [n.tag for n in root.all(pred=lambda n: "src" in n.attrs or n.tag in ("link", "iframe", "object")
                                   or not n.attrs.get("href", "#").startswith("#"))]
    style = "".join(text(n) for n in root.all("style")).lower()
    check("static: no external resources", not ext and "@import" not in style and "url(" not in style,
          "found %s" % ext)
    n = html.lower().count("<script")
    check("static: one script element, the page's own", n == 1, "%d <script" % n)


def best_area_index(methods):
    best, idx = None, []
    for i, m in enumerate(methods):
        a = (m.get("area") or {}).get("mean") if isinstance(m.get("area"), dict) else None
        if m.get("kind") == "bound" or not isinstance(a, (int, float)):
            continue
        if best is None or a > best + 1e-12:
            best, idx = a, [i]
        elif abs(a - best) <= 1e-12:
            idx.append(i)
    return idx


def plot_checks(p, ds, svg, sec):
    """The plot of one data set; returns how many curves it has."""
    area = svg.one("rect", "plot-area")
    aw = float(area.attrs["width"])
    methods = ds["methods"]
    curves = list(svg.all("path", "curve"))
    ids = [c.attrs.get("data-method") for c in curves]
    check(p + ": one curve per method", sorted(ids) == sorted(m["id"] for m in methods),
          "%s" % ids)
    for c in curves:
        m = methods[int(c.attrs["data-idx"])]
        pts = [q for q in (m.get("curve") or [])
               if isinstance(q, list) and len(q) == 2 and all(isinstance(v, (int, float)) for v in q)]
        span = (max(q[0] for q in pts) - min(q[0] for q in pts)) if pts else 0
        length = float(c.attrs.get("data-length", "0"))
        # A curve over the whole cost range is at least as long as the
        # plot is wide; a flat or half-drawn curve would be shorter.
        check("%s: curve %r drawn (length %.0f, plot width %.0f)" % (p, m["id"], length, aw),
              length > 0 and length >= 0.95 * aw * span)
        check("%s: curve %r inside the axes" % (p, m["id"]), c.attrs.get("data-inside") == "1")
        want = m.get("kind") in ("baseline", "bound")
        check("%s: curve %r line style fits its kind" % (p, m["id"]),
              ("stroke-dasharray" in c.attrs) == want)
    legend = sec.one("ul", "legend")
    items = [li for li in legend.all("li") if "data-method" in li.attrs] if legend else []
    check(p + ": legend lists every method by its label, in order",
          [text(li).strip() for li in items] == [m.get("label") or m["id"] for m in methods],
          repr([text(li) for li in items]))
    models = [m for m in ds.get("single_models") or []
              if isinstance(m.get("cost_norm"), (int, float)) and isinstance(m.get("accuracy"), (int, float))]
    marks = list(svg.all("g", "model"))
    check(p + ": a labelled point per single test model",
          len(marks) == len(models) and all(g.one("circle") and text(g.one("text")) for g in marks),
          "%d marks, %d models" % (len(marks), len(models)))
    check(p + ": point tooltips carry the full model names",
          [text(g.one("title")).split(": normalised cost")[0] for g in marks] == [m["name"] for m in models])

    return len(curves)


def fmt_stat(st):
    """The text a mean of tools/EVAL_JSON.md shows as, or None if none."""
    if isinstance(st, dict) and isinstance(st.get("mean"), (int, float)) and not isinstance(st["mean"], bool):
        return "%.3f" % st["mean"]
    return None


def points_checks(p, ds, sec):
    """The operating-points table: there exactly when the methods carry the
    fields, a row per method, and each cell showing its value, ∞ for a CPT
    never reached, the seeds where reached, and the seeds below
    Pareto-random for routers."""
    methods = ds["methods"]
    table = sec.one("table", "points")
    has = any(isinstance(m, dict) and any(k in m for k in ("cpt", "apgr", "best_single_accuracy"))
              for m in methods)
    if not check(p + ": operating-points table exactly when present", (table is not None) == has):
        return
    if table is None:
        return
    rows = list(table.one("tbody").all("tr"))
    check(p + ": operating-points row per method", len(rows) == len(methods), "%d rows" % len(rows))
    n = len(ds.get("seeds") or [])
    for r, m in zip(rows, methods):
        cells = [text(c) for c in r.all("td")]
        if not check("%s: %r has 8 operating-point cells" % (p, m["id"]), len(cells) == 8, repr(cells)):
            continue
        want = fmt_stat(m.get("best_single_accuracy"))
        check("%s: %r best single model" % (p, m["id"]),
              (want in cells[1]) if want else cells[1].strip() == "—", cells[1])
        cpt = m.get("cpt") if isinstance(m.get("cpt"), dict) else {}
        for j, k in enumerate(("80", "90", "95", "100")):
            st, cell = cpt.get(k), cells[2 + j]
            if not isinstance(st, dict):
                ok = cell.strip() == "—"
            elif fmt_stat(st) is None or st.get("finite") == 0:
                ok = "∞" in cell
            else:
                ok = fmt_stat(st) in cell
            if isinstance(st, dict) and isinstance(st.get("finite"), int) and n:
                ok = ok and ("%d/%d" % (st["finite"], n)) in cell
            check("%s: %r CPT %s%% shows %s" % (p, m["id"], k, st), ok, cell)
        want = fmt_stat(m.get("apgr"))
        check("%s: %r APGR" % (p, m["id"]),
              (want in cells[6]) if want else cells[6].strip() == "—", cells[6])
        b = m.get("below_pareto_random")
        if isinstance(b, dict) and all(isinstance(b.get(x), int) for x in ("seeds", "of")):
            check("%s: %r seeds below Pareto-random" % (p, m["id"]),
                  ("%d of %d seeds" % (b["seeds"], b["of"])) in cells[7] and
                  (b["seeds"] == 0) == ("by up to" not in cells[7]), cells[7])
        else:
            check("%s: %r no below-Pareto-random figure shows a dash" % (p, m["id"]),
                  cells[7].strip() == "—", cells[7])


def dom_checks(tag, doc, dom):
    root = parse(dom)
    page = root.one("html")
    n_scripts = len(list(root.all("script")))
    check(tag + ": page ran its measuring script",
          page is not None and page.attrs.get("data-measured") is not None)
    check(tag + ": one script element in the rendered DOM", n_scripts == 1, "%d" % n_scripts)
    check(tag + ": no script from the data ran", root.one(pred=lambda n: "data-pwned" in n.attrs)
          is None and "data-pwned" not in (page.attrs if page else {}))
    # The page itself uses none of these; the data carries all of them.
    injected = [t for t in ("img", "u", "i", "b") if root.one(t) is not None]
    check(tag + ": no markup from the data became elements", not injected, str(injected))
    title = text(root.one("title"))
    names = [d["name"] for d in doc["datasets"]]
    check(tag + ": title names the data sets verbatim",
          title == "tinyroute evaluation: " + ", ".join(names), repr(title))

    n_curves = 0
    sections = list(root.all("section", "ds"))
    check(tag + ": one section per data set", len(sections) == len(doc["datasets"]),
          "%d sections" % len(sections))
    for d, (ds, sec) in enumerate(zip(doc["datasets"], sections)):
        p = "%s/%s" % (tag, ds["name"][:20])
        check(p + ": heading is the name verbatim", text(sec.one("h2")) == ds["name"],
              repr(text(sec.one("h2"))))
        svg = sec.one("svg", "plot")
        if not (ds["methods"] or ds.get("single_models")):
            check(p + ": no plot without methods or models", svg is None)
        elif check(p + ": has a plot", svg is not None):
            n_curves += plot_checks(p, ds, svg, sec)

        methods = ds["methods"]
        table = sec.one("table", "metrics")
        if methods:
            rows = list(table.one("tbody").all("tr")) if table else []
            check(p + ": metrics row per method", len(rows) == len(methods), "%d rows" % len(rows))
            bold = [i for i, r in enumerate(rows) if "best" in r.attrs.get("class", "")]
            check(p + ": best area (oracle aside) in bold", bold == best_area_index(methods),
                  "bold %s, want %s" % (bold, best_area_index(methods)))
            for r, m in zip(rows, methods):
                q = m.get("qnc")
                cell = text(list(r.all("td"))[3])
                if isinstance(q, dict) and q.get("mean") is None:
                    check("%s: QNC of %r never reached shows infinity" % (p, m["id"]), "∞" in cell, cell)
                if isinstance(q, dict) and isinstance(q.get("finite"), int) and ds.get("seeds"):
                    want = "finite in %d of %d seeds" % (q["finite"], len(ds["seeds"]))
                    check("%s: QNC of %r counts finite seeds" % (p, m["id"]), want in cell, cell)
                if not isinstance(m.get("area"), dict) or m["area"].get("mean") is None:
                    check("%s: missing area of %r shows a dash" % (p, m["id"]),
                          text(list(r.all("td"))[2]).strip() == "—")
        else:
            check(p + ": no metrics table without methods", table is None)
        points_checks(p, ds, sec)
        tasks = sec.one("table", "tasks")
        if isinstance(ds.get("tasks"), dict):
            n = len(list(tasks.one("tbody").all("tr"))) if tasks else -1
            check(p + ": task table, a row per task", n == len(ds["tasks"].get("rows") or []), "%d" % n)
        else:
            check(p + ": no task table without tasks", tasks is None)
        fid = sec.one("table", "fidelity")
        check(p + ": fidelity table exactly when present",
              (fid is not None) == isinstance(ds.get("fidelity"), dict))
    check(tag + ": every curve was measured",
          page is not None and page.attrs.get("data-measured") == str(n_curves),
          "%s of %d" % (page.attrs.get("data-measured") if page else None, n_curves))
    return root


def screenshot_checks(html_path, root, doc):
    svgs = list(root.all("svg", "plot"))
    rects = [[int(v) for v in s.attrs.get("data-area-px", "0 0 0 0").split()] for s in svgs]
    height = max((r[1] + r[3] for r in rects), default=600) + 40
    png = os.path.join(WORK, "sample.png")
    r = chromium("file://" + os.path.abspath(html_path), "--window-size=%d,%d" % (WIDTH, height),
                 "--screenshot=" + png)
    if not check("screenshot: PNG written", r.returncode == 0 and os.path.exists(png),
                 r.stderr[-300:]):
        return
    try:
        w, h, bpp, rows = png_rgb(png)
    except (ValueError, zlib.error, struct.error) as e:
        check("screenshot: PNG decodes", False, str(e))
        return
    check("screenshot: PNG decodes at the window size", (w, h) == (WIDTH, height), "%dx%d" % (w, h))
    for d, (svg, (x0, y0, rw, rh)) in enumerate(zip(svgs, rects)):
        ds = doc["datasets"][d]
        inside = [(x, y) for y in range(y0 + 2, min(y0 + rh - 2, h)) for x in range(x0 + 2, min(x0 + rw - 2, w))]
        def px(x, y):
            o = x * bpp
            return rows[y][o], rows[y][o + 1], rows[y][o + 2]
        ink = sum(1 for x, y in inside if min(px(x, y)) < 200)
        check("screenshot %s: plot area not blank (%d dark pixels of %d)" % (ds["name"], ink, len(inside)),
              rw > 100 and rh > 100 and ink > 0.01 * len(inside))
        for c in svg.all("path", "curve"):
            want = hex_rgb(c.attrs["stroke"])
            hits = sum(1 for x, y in inside
                       if sum((a - b) ** 2 for a, b in zip(px(x, y), want)) < 30 ** 2)
            # Curves overlap and dashes leave gaps: a quarter of the plot
            # width in the curve's own colour still means it was painted.
            check("screenshot %s: curve %r painted (%d px in %s)" % (ds["name"], c.attrs["data-method"],
                                                                     hits, c.attrs["stroke"]),
                  hits >= 0.25 * rw)


def main():
    sample = os.path.join(HERE, "report", "sample.json")
    nasty = os.path.join(HERE, "report", "nasty.json")

    regen = tempfile.mkdtemp(dir=WORK)
    subprocess.run([sys.executable, os.path.join(HERE, "report", "make_sample.py"), regen], check=True)
    for f in ("sample.json", "nasty.json"):
        check("fixture %s matches make_sample.py" % f,
              open(os.path.join(regen, f), "rb").read() == open(os.path.join(HERE, "report", f), "rb").read())

    cli_checks(sample)
    for tag, src in (("sample", sample), ("nasty", nasty)):
        out = os.path.join(WORK, tag + ".html")
        r = report(src, out, "--force")
        if not check(tag + ": rendered", r.returncode == 0, r.stderr):
            continue
        static_checks(out)
        doc = json.load(open(src, encoding="utf-8"))
        dom = dump_dom(out)
        if not check(tag + ": chromium dumped the DOM", bool(dom)):
            continue
        # A page the checks cannot even walk is a failure, not a crash
        # without a summary line.
        try:
            root = dom_checks(tag, doc, dom)
            if tag == "sample":
                screenshot_checks(out, root, doc)
        except Exception:
            check(tag + ": checks completed", False, traceback.format_exc())

    print("%d passed, %d failed" % (passed, failed))
    if failed:
        print("outputs kept in " + WORK)
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
