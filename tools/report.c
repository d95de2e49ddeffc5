/* trh_report_html: the results document as one HTML page (see report.h). */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- the document: lookups that treat a wrong type as absent ---- */

static const cJSON *field(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = field(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* JSON cannot carry NaN or infinity, but a huge exponent parses to inf. */
static int num(const cJSON *o, const char *key, double *x)
{
    const cJSON *v = field(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return 0;
    *x = v->valuedouble;
    return 1;
}

static int stat_mean(const cJSON *m, const char *key, double *x)
{
    return num(field(m, key), "mean", x);
}

int trh_report_check(const cJSON *results, char *err, size_t cap)
{
    char dummy[1];
    if (!cap)
        err = dummy, cap = 1;
    if (!cJSON_IsObject(results))
        return snprintf(err, cap, "the document is not a JSON object"), 1;
    const cJSON *ds = field(results, "datasets");
    if (!cJSON_IsArray(ds))
        return snprintf(err, cap, "no \"datasets\" array"), 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, ds) {
        if (!cJSON_IsObject(d))
            return snprintf(err, cap, "datasets[%d] is not an object", i), 1;
        if (!str(d, "name"))
            return snprintf(err, cap, "datasets[%d] has no string \"name\"", i), 1;
        if (!cJSON_IsArray(field(d, "methods")))
            return snprintf(err, cap, "datasets[%d] has no \"methods\" array", i), 1;
        const cJSON *local = field(d, "local"), *sc;
        if (local && !cJSON_IsArray(local))
            return snprintf(err, cap, "datasets[%d].local is not an array", i), 1;
        cJSON_ArrayForEach(sc, local) {
            if (!cJSON_IsObject(sc) || !cJSON_IsArray(field(sc, "points")))
                return snprintf(err, cap, "datasets[%d].local holds a scenario without a "
                                "\"points\" array", i), 1;
        }
        i++;
    }
    return 0;
}

/* ---- output ---- */

static void put(FILE *f, const char *s) { fputs(s, f); }

static void __attribute__((format(printf, 2, 3))) putf(FILE *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
}

/* Names and paths are user data: escaped for text and for quoted attribute
 * values alike. C0 controls are dropped: HTML has no way to show them. */
static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': put(f, "&amp;"); break;
        case '<': put(f, "&lt;"); break;
        case '>': put(f, "&gt;"); break;
        case '"': put(f, "&quot;"); break;
        case '\'': put(f, "&#39;"); break;
        default:
            if (c >= 0x20 || c == '\t' || c == '\n')
                fputc(c, f);
        }
    }
}

static void esc_or_dash(FILE *f, const char *s)
{
    if (s && *s)
        esc(f, s);
    else
        put(f, "—");
}

static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The first max characters of s (whole UTF-8 sequences), "…" if cut. */
static void esc_trunc(FILE *f, const char *s, size_t max)
{
    if (utf8_len(s) <= max) {
        esc(f, s);
        return;
    }
    size_t n = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && n++ == max - 1)
            break;
    }
    char *cut = trh_xmalloc(i + 1);
    memcpy(cut, s, i);
    cut[i] = 0;
    esc(f, cut);
    free(cut);
    put(f, "…");
}

/* A JSON scalar as table text: numbers with %g, strings escaped. */
static void scalar(FILE *f, const cJSON *v)
{
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
        putf(f, "%g", v->valuedouble);
    else if (cJSON_IsString(v) && v->valuestring)
        esc_or_dash(f, v->valuestring);
    else if (cJSON_IsBool(v))
        put(f, cJSON_IsTrue(v) ? "yes" : "no");
    else
        put(f, "—");
}

static void mean_std(FILE *f, const cJSON *s, int digits)
{
    double m, sd;
    if (!num(s, "mean", &m)) {
        put(f, "—");
        return;
    }
    putf(f, "%.*f", digits, m);
    if (num(s, "std", &sd))
        putf(f, "<span class=\"pm\"> ± %.*f</span>", digits, sd);
}

/* ---- the page frame ---- */

static const char css[] =
    ":root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9;--card:#fff;"
    "--accent:#0f4c81}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}\n"
    "main{max-width:1180px;margin:0 auto;padding:24px 20px 48px}\n"
    "header.top{border-bottom:3px solid var(--accent);margin-bottom:20px;padding-bottom:12px}\n"
    "h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}\n"
    "h2{font-size:21px;margin:0 0 8px}h3{font-size:16px;margin:24px 0 8px}\n"
    ".sub{color:var(--muted);margin:0 0 12px}\n"
    "section.ds{background:var(--card);border:1px solid var(--line);border-radius:10px;"
    "padding:20px 22px;margin:22px 0;box-shadow:0 1px 2px rgba(0,0,0,.04)}\n"
    "dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0 16px;"
    "font-size:13.5px}\n"
    "dl.prov dt{color:var(--muted)}dl.prov dd{margin:0;overflow-wrap:anywhere}\n"
    "code,.hash{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}\n"
    ".hash{overflow-wrap:anywhere;color:#374151}\n"
    "nav.toc a{margin-right:14px;color:var(--accent)}\n"
    ".headline{background:#eef4fb;border-left:4px solid var(--accent);padding:8px 12px;"
    "margin:8px 0 16px;border-radius:4px}\n"
    ".figure{display:grid;grid-template-columns:minmax(0,1fr) 230px;gap:12px;align-items:start}\n"
    "@media (max-width:820px){.figure{grid-template-columns:1fr}}\n"
    "svg.plot{width:100%;height:auto;display:block;font-family:inherit}\n"
    "svg.plot .plot-area{fill:#fcfcfd;stroke:#d1d5db}\n"
    "svg.plot .grid{stroke:#eceef1}svg.plot .tick{fill:#4b5563;font-size:11.5px}\n"
    "svg.plot .axis-title{fill:#374151;font-size:12.5px}\n"
    "svg.plot .curve{fill:none;stroke-width:2.2;stroke-linejoin:round}\n"
    "svg.plot .model circle{fill:#374151;stroke:#fff;stroke-width:1.2}\n"
    "svg.plot .model text{font-size:10px;fill:#374151;paint-order:stroke;stroke:#fff;"
    "stroke-width:3px;stroke-linejoin:round}\n"
    "svg.plot .model line{stroke:#9ca3af;stroke-width:.8}\n"
    "ul.legend{list-style:none;margin:8px 0 0;padding:0;font-size:13.5px}\n"
    "ul.legend li{display:flex;align-items:center;gap:8px;padding:3px 4px;border-radius:4px;"
    "cursor:pointer;user-select:none}\n"
    "ul.legend li:hover{background:#f3f4f6}ul.legend li.off{opacity:.35}\n"
    "ul.legend li.static{cursor:default}ul.legend svg{flex:none}"
    "ul.legend span{min-width:0;overflow-wrap:anywhere}\n"
    ".note{color:var(--muted);font-size:12.5px;margin:6px 0}\n"
    ".scroll{overflow-x:auto}\n"
    "table{border-collapse:collapse;width:100%;font-size:14px;margin:6px 0}\n"
    "th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;"
    "vertical-align:top}\n"
    "th{font-weight:600;color:#374151;background:#f9fafb;white-space:nowrap}\n"
    "td{overflow-wrap:anywhere}table.metrics td:first-child{min-width:11em}\n"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "tbody tr:nth-child(even){background:#fafbfc}tfoot td{font-weight:600;"
    "border-top:2px solid var(--line)}\n"
    "tr.best td{background:#f0f7ff}td.best{font-weight:700}\n"
    ".pm,.seeds{color:var(--muted)}.seeds{font-size:12px}\n"
    ".sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;"
    "vertical-align:baseline}\n"
    ".kind{font-size:12px;color:var(--muted)}\n"
    "footer{color:var(--muted);font-size:12.5px;margin-top:28px}\n"
    "@media (max-width:600px){main{padding:14px 8px 32px}section.ds{padding:14px 12px}}\n"
    "@media print{body{background:#fff}section.ds{box-shadow:none;break-inside:avoid}}\n";

/* The page measures its own plot after layout and writes the numbers into
 * the DOM, so a headless browser's --dump-dom shows whether every curve was
 * really drawn inside the axes (tests/test_report.py reads them). Clicking a
 * legend entry hides or shows its curve. */
static const char js[] =
    "(function(){\n"
    "var n=0;\n"
    "document.querySelectorAll('svg.plot').forEach(function(svg){\n"
    " var area=svg.querySelector('.plot-area'),a=area.getBBox(),r=area.getBoundingClientRect();\n"
    " svg.setAttribute('data-area-px',[r.left+scrollX,r.top+scrollY,r.width,r.height]"
    ".map(Math.round).join(' '));\n"
    " svg.querySelectorAll('path.curve').forEach(function(p){\n"
    "  var b=p.getBBox(),len=p.getTotalLength();\n"
    "  var inside=b.x>=a.x-1&&b.y>=a.y-1&&b.x+b.width<=a.x+a.width+1&&"
    "b.y+b.height<=a.y+a.height+1;\n"
    "  p.setAttribute('data-length',len.toFixed(1));\n"
    "  p.setAttribute('data-inside',inside?'1':'0');n++;\n"
    " });\n"
    "});\n"
    "document.documentElement.setAttribute('data-measured',String(n));\n"
    "document.querySelectorAll('ul.legend li[data-idx]').forEach(function(li){\n"
    " function flip(){var c=li.closest('.figure').querySelector("
    "'path.curve[data-idx=\"'+li.getAttribute('data-idx')+'\"]');\n"
    "  if(c){var off=li.classList.toggle('off');c.style.display=off?'none':'';"
    "li.setAttribute('aria-pressed',off?'false':'true');}}\n"
    " li.addEventListener('click',flip);\n"
    " li.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' ')"
    "{e.preventDefault();flip();}});\n"
    "});\n"
    "})();\n";

/* ---- methods: colour and line style by kind ---- */

/* Okabe-Ito: tells apart for the common colour-vision deficiencies. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#8c564b", "#1b9e77"};

enum { K_ROUTER, K_BASELINE, K_BOUND };

static int kind_of(const cJSON *m)
{
    const char *k = str(m, "kind");
    if (k && !strcmp(k, "baseline"))
        return K_BASELINE;
    if (k && !strcmp(k, "bound"))
        return K_BOUND;
    return K_ROUTER;
}

typedef struct {
    const char *color;
    const char *dash; /* stroke-dasharray or NULL */
} style;

static style style_of(const cJSON *methods, const cJSON *m)
{
    int kind = kind_of(m);
    if (kind == K_BASELINE)
        return (style){"#6b7280", "7 5"};
    if (kind == K_BOUND)
        return (style){"#111827", "1.5 4"};
    int r = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, methods) {
        if (o == m)
            break;
        r += kind_of(o) == K_ROUTER;
    }
    return (style){palette[r % (sizeof palette / sizeof *palette)], NULL};
}

static const char *label_of(const cJSON *m)
{
    const char *s = str(m, "label");
    if (s && *s)
        return s;
    s = str(m, "id");
    return s && *s ? s : "(unnamed method)";
}

/* ---- the plot ---- */

enum { VW = 720, VH = 420, PL = 62, PR = 704, PT = 14, PB = 354 };

typedef struct {
    double x0, x1, y0, y1, xstep, ystep;
} axes;

static int point(const cJSON *p, double *x, double *y)
{
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) < 2)
        return 0;
    const cJSON *a = cJSON_GetArrayItem(p, 0), *b = cJSON_GetArrayItem(p, 1);
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !isfinite(a->valuedouble) ||
        !isfinite(b->valuedouble))
        return 0;
    *x = a->valuedouble;
    *y = b->valuedouble;
    return 1;
}

static double nice_step(double span, int target)
{
    double raw = span / target, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

/* Axes on nice steps around the data's extent, y padded by pad_frac of its
 * span on each side (the caller widens an empty or flat y range first). */
static axes axes_around(double xmin, double xmax, double ymin, double ymax, double pad_frac)
{
    axes a = {.xstep = nice_step(xmax - xmin, 10)};
    double pad = pad_frac * (ymax - ymin);
    a.ystep = nice_step(ymax - ymin + 2 * pad, 7);
    a.x0 = floor(xmin / a.xstep + 1e-9) * a.xstep;
    a.x1 = ceil(xmax / a.xstep - 1e-9) * a.xstep;
    a.y0 = floor((ymin - pad) / a.ystep) * a.ystep;
    a.y1 = ceil((ymax + pad) / a.ystep) * a.ystep;
    return a;
}

static axes axes_for(const cJSON *ds)
{
    double xmin = 0, xmax = 1, ymin = INFINITY, ymax = -INFINITY, x, y;
    const cJSON *m, *p;
    cJSON_ArrayForEach(m, field(ds, "methods")) {
        cJSON_ArrayForEach(p, field(m, "curve")) {
            if (point(p, &x, &y)) {
                xmin = fmin(xmin, x), xmax = fmax(xmax, x);
                ymin = fmin(ymin, y), ymax = fmax(ymax, y);
            }
        }
    }
    cJSON_ArrayForEach(m, field(ds, "single_models")) {
        if (num(m, "cost_norm", &x) && num(m, "accuracy", &y)) {
            xmin = fmin(xmin, x), xmax = fmax(xmax, x);
            ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    }
    if (ymin > ymax)
        ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-6)
        ymin -= 0.05, ymax += 0.05;
    return axes_around(xmin, xmax, ymin, ymax, 0.03);
}

static double px(const axes *a, double x) { return PL + (x - a->x0) / (a->x1 - a->x0) * (PR - PL); }
static double py(const axes *a, double y) { return PB - (y - a->y0) / (a->y1 - a->y0) * (PB - PT); }

static int decimals(double step)
{
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d;
}

static void plot_axes(FILE *f, const axes *a, const char *x_title, const char *x_unit,
                      const char *y_title)
{
    putf(f, "<rect class=\"plot-area\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", PL, PT,
         PR - PL, PB - PT);
    int dx = decimals(a->xstep), dy = decimals(a->ystep);
    put(f, "<g class=\"ticks\">");
    for (int i = 0;; i++) {
        double v = a->x0 + i * a->xstep;
        if (v > a->x1 + a->xstep * 1e-6)
            break;
        double X = px(a, v);
        putf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", X, PT, X, PB);
        putf(f, "<line stroke=\"#9ca3af\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", X, PB, X,
             PB + 5);
        putf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.*f</text>\n", X,
             PB + 19, dx, v);
    }
    for (int i = 0;; i++) {
        double v = a->y0 + i * a->ystep;
        if (v > a->y1 + a->ystep * 1e-6)
            break;
        double Y = py(a, v);
        putf(f, "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", PL, Y, PR, Y);
        putf(f, "<line stroke=\"#9ca3af\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>", PL - 5, Y,
             PL, Y);
        putf(f, "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", PL - 8,
             Y + 4, dy, v);
    }
    put(f, "</g>\n");
    putf(f, "<text class=\"axis-title\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s",
         (PL + PR) / 2, PB + 42, x_title);
    if (x_unit && *x_unit) {
        put(f, " [");
        esc(f, x_unit);
        put(f, "]");
    }
    put(f, "</text>\n");
    putf(f, "<text class=\"axis-title\" transform=\"translate(16 %d) rotate(-90)\" "
            "text-anchor=\"middle\">%s</text>\n", (PT + PB) / 2, y_title);
}

static void plot_curve(FILE *f, const axes *a, const cJSON *methods, const cJSON *m, int idx)
{
    style s = style_of(methods, m);
    const char *id = str(m, "id");
    putf(f, "<path class=\"curve\" data-idx=\"%d\" data-method=\"", idx);
    esc(f, id ? id : "");
    putf(f, "\" data-kind=\"%s\" stroke=\"%s\"",
         (const char *[]){"router", "baseline", "bound"}[kind_of(m)], s.color);
    if (s.dash)
        putf(f, " stroke-dasharray=\"%s\" stroke-linecap=\"round\"", s.dash);
    put(f, " d=\"");
    /* A missing point breaks the line rather than bridging the gap. */
    int pen = 0;
    double x, y;
    const cJSON *p;
    cJSON_ArrayForEach(p, field(m, "curve")) {
        if (!point(p, &x, &y)) {
            pen = 0;
            continue;
        }
        putf(f, "%c%.1f %.1f", pen ? 'L' : 'M', px(a, x), py(a, y));
        pen = 1;
    }
    put(f, "\"><title>");
    esc(f, label_of(m));
    put(f, "</title></path>\n");
}

typedef struct {
    double x0, y0, x1, y1;
} box;

typedef struct {
    double x, y;
} pt;

/* Points along every curve, at most 4 px apart, and the model markers:
 * what a label should not cover. */
static pt *obstacles(const axes *a, const cJSON *ds, int *n_out)
{
    int cap = 256, n = 0;
    pt *o = trh_xmalloc(cap * sizeof *o);
    const cJSON *m, *p;
    double x, y;
    cJSON_ArrayForEach(m, field(ds, "methods")) {
        int have = 0;
        pt prev = {0, 0};
        cJSON_ArrayForEach(p, field(m, "curve")) {
            if (!point(p, &x, &y)) {
                have = 0;
                continue;
            }
            pt q = {px(a, x), py(a, y)};
            int steps = have ? (int)ceil(hypot(q.x - prev.x, q.y - prev.y) / 4) : 1;
            for (int i = 1; i <= steps; i++) {
                if (n == cap)
                    o = trh_xrealloc(o, (size_t)(cap *= 2) * sizeof *o);
                double t = have ? (double)i / steps : 1;
                o[n++] = (pt){prev.x + t * (q.x - prev.x), prev.y + t * (q.y - prev.y)};
            }
            prev = q, have = 1;
        }
    }
    cJSON_ArrayForEach(m, field(ds, "single_models")) {
        if (num(m, "cost_norm", &x) && num(m, "accuracy", &y)) {
            if (n == cap)
                o = trh_xrealloc(o, (size_t)(cap *= 2) * sizeof *o);
            o[n++] = (pt){px(a, x), py(a, y)};
        }
    }
    *n_out = n;
    return o;
}

static double clutter(const box *b, const box *placed, int n, const pt *obs, int n_obs)
{
    double c = 0;
    if (b->x0 < PL + 1 || b->x1 > VW - 1 || b->y0 < PT || b->y1 > PB)
        c += 1000;
    for (int i = 0; i < n; i++)
        if (b->x0 < placed[i].x1 && placed[i].x0 < b->x1 && b->y0 < placed[i].y1 &&
            placed[i].y0 < b->y1)
            c += 100;
    for (int i = 0; i < n_obs; i++)
        if (obs[i].x > b->x0 - 2 && obs[i].x < b->x1 + 2 && obs[i].y > b->y0 - 2 &&
            obs[i].y < b->y1 + 2)
            c += 1;
    return c;
}

enum { LABEL_CHARS = 24 };

/* Each label goes to the spot around its point that covers the fewest
 * labels placed so far, curve points and markers: test models often share a
 * cost, and labels stacked on each other or on the curves are unreadable. A
 * displaced label gets a leader line. */
static void plot_models(FILE *f, const axes *a, const cJSON *ds)
{
    const cJSON *models = field(ds, "single_models"), *m;
    int n = cJSON_GetArraySize(models), k = 0, n_obs;
    box *placed = trh_xcalloc((size_t)n + 1, sizeof *placed);
    pt *obs = obstacles(a, ds, &n_obs);
    put(f, "<g class=\"models\">\n");
    cJSON_ArrayForEach(m, models) {
        double x, y, sd;
        if (!num(m, "cost_norm", &x) || !num(m, "accuracy", &y))
            continue;
        const char *name = str(m, "name");
        if (!name || !*name)
            name = "(unnamed model)";
        double X = px(a, x), Y = py(a, y);
        size_t chars = utf8_len(name);
        double w = 5.6 * (double)(chars > LABEL_CHARS ? LABEL_CHARS : chars) + 2;
        double best = INFINITY, tx = 0, ty = 0;
        int left = 0;
        box chosen_box = {0, 0, 0, 0};
        for (int i = 0; i < 13 && best > 0; i++) {
            double dy = (i + 1) / 2 * 12.0 * (i % 2 ? -1 : 1);
            for (int side = 0; side < 2; side++) {
                box b = side ? (box){X - 6 - w, Y - 6 + dy, X - 6, Y + 6 + dy}
                             : (box){X + 6, Y - 6 + dy, X + 6 + w, Y + 6 + dy};
                double c = clutter(&b, placed, k, obs, n_obs) + fabs(dy) * 0.01;
                if (c < best) {
                    best = c, chosen_box = b, left = side;
                    tx = side ? X - 6 : X + 6, ty = Y + 3.5 + dy;
                }
            }
        }
        placed[k++] = chosen_box;
        put(f, "<g class=\"model\"><title>");
        esc(f, name);
        putf(f, ": normalised cost %.3f, accuracy %.3f", x, y);
        if (num(m, "seeds", &sd))
            putf(f, " (a test model in %g seeds)", sd);
        put(f, "</title>");
        if (fabs(ty - 3.5 - Y) > 1)
            putf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", X, Y, tx, ty - 3.5);
        putf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.6\"/>", X, Y);
        putf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">", tx, ty, left ? "end" : "start");
        esc_trunc(f, name, LABEL_CHARS);
        put(f, "</text></g>\n");
    }
    put(f, "</g>\n");
    free(obs);
    free(placed);
}

static void legend_swatch(FILE *f, style s)
{
    putf(f, "<svg width=\"30\" height=\"10\" aria-hidden=\"true\"><line x1=\"1\" y1=\"5\" x2=\"29\" "
            "y2=\"5\" stroke=\"%s\" stroke-width=\"2.4\" stroke-linecap=\"round\"", s.color);
    if (s.dash)
        putf(f, " stroke-dasharray=\"%s\"", s.dash);
    put(f, "/></svg>");
}

static void figure(FILE *f, const cJSON *ds, int d)
{
    const cJSON *methods = field(ds, "methods"), *models = field(ds, "single_models"), *m;
    if (!cJSON_GetArraySize(methods) && !cJSON_GetArraySize(models)) {
        put(f, "<p class=\"note\">No methods and no single models in this data set: nothing to "
               "plot.</p>\n");
        return;
    }
    axes a = axes_for(ds);
    put(f, "<div class=\"figure\">\n");
    putf(f, "<svg class=\"plot\" data-ds=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" "
            "aria-label=\"Deferral curves: accuracy against normalised cost\">\n", d, VW, VH);
    plot_axes(f, &a, "Normalised cost", str(ds, "cost_unit"), "Accuracy");
    /* Reference lines first, so the routers are drawn over them. */
    for (int pass = 0; pass < 2; pass++) {
        int idx = 0;
        cJSON_ArrayForEach(m, methods) {
            if ((kind_of(m) == K_ROUTER) == pass)
                plot_curve(f, &a, methods, m, idx);
            idx++;
        }
    }
    if (cJSON_IsArray(models))
        plot_models(f, &a, ds);
    put(f, "</svg>\n<ul class=\"legend\">\n");
    int idx = 0;
    cJSON_ArrayForEach(m, methods) {
        const char *id = str(m, "id");
        putf(f, "<li data-idx=\"%d\" data-method=\"", idx++);
        esc(f, id ? id : "");
        put(f, "\" tabindex=\"0\" role=\"button\" aria-pressed=\"true\" "
               "title=\"show or hide this curve\">");
        legend_swatch(f, style_of(methods, m));
        put(f, "<span>");
        esc(f, label_of(m));
        put(f, "</span></li>\n");
    }
    if (cJSON_GetArraySize(models) > 0)
        put(f, "<li class=\"static\"><svg width=\"30\" height=\"10\" aria-hidden=\"true\">"
               "<circle cx=\"15\" cy=\"5\" r=\"3.6\" fill=\"#374151\"/></svg>"
               "<span>single test models</span></li>\n");
    put(f, "</ul>\n</div>\n");
    if (!cJSON_GetArraySize(methods))
        put(f, "<p class=\"note\">No methods in this data set.</p>\n");
}

/* ---- tables ---- */

/* The per-seed choices as "value ×count", most frequent first. */
static void chosen(FILE *f, const cJSON *m)
{
    const cJSON *c = field(m, "chosen");
    const char *param = str(m, "param");
    int n = cJSON_GetArraySize(c);
    if (!cJSON_IsArray(c) || n == 0) {
        put(f, "—");
        return;
    }
    if (param) {
        esc(f, param);
        put(f, " = ");
    }
    int *count = trh_xcalloc((size_t)n, sizeof *count);
    const cJSON **val = trh_xcalloc((size_t)n, sizeof *val);
    int distinct = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, c) {
        int j = 0;
        while (j < distinct && !cJSON_Compare(val[j], v, 1))
            j++;
        if (j == distinct)
            val[distinct++] = v;
        count[j]++;
    }
    for (int shown = 0; shown < distinct; shown++) {
        int best = -1;
        for (int j = 0; j < distinct; j++)
            if (count[j] > 0 && (best < 0 || count[j] > count[best]))
                best = j;
        if (shown)
            put(f, ", ");
        scalar(f, val[best]);
        if (distinct > 1 || count[best] > 1)
            putf(f, "<span class=\"pm\"> ×%d</span>", count[best]);
        count[best] = -count[best];
    }
    free(count);
    free(val);
}

static void qnc_cell(FILE *f, const cJSON *m, int n_seeds)
{
    const cJSON *q = field(m, "qnc");
    double mean, fin;
    int has_fin = num(q, "finite", &fin);
    if (!cJSON_IsObject(q)) {
        put(f, "—");
        return;
    }
    if (!num(q, "mean", &mean) || (has_fin && fin <= 0)) {
        put(f, "<span title=\"never reached the best single test model\">∞</span>");
    } else {
        mean_std(f, q, 3);
    }
    if (has_fin) {
        if (n_seeds > 0)
            putf(f, "<br><span class=\"seeds\">finite in %g of %d seeds</span>", fin, n_seeds);
        else
            putf(f, "<br><span class=\"seeds\">finite in %g seeds</span>", fin);
    }
}

static void metrics_table(FILE *f, const cJSON *ds)
{
    const cJSON *methods = field(ds, "methods"), *m;
    if (!cJSON_GetArraySize(methods))
        return;
    int n_seeds = cJSON_GetArraySize(field(ds, "seeds"));
    /* The oracle bounds every router from above; bold marks the best method
     * one could actually deploy. */
    double best = -INFINITY, v;
    cJSON_ArrayForEach(m, methods)
        if (kind_of(m) != K_BOUND && stat_mean(m, "area", &v))
            best = fmax(best, v);
    put(f, "<h3>Metrics</h3>\n<div class=\"scroll\"><table class=\"metrics\">\n<thead><tr>"
           "<th>Method</th><th>Chosen parameter (per seed)</th><th class=\"n\">Area ↑</th>"
           "<th class=\"n\">QNC ↓</th><th class=\"n\">Peak accuracy ↑</th></tr></thead>\n<tbody>\n");
    int idx = 0;
    cJSON_ArrayForEach(m, methods) {
        int is_best = kind_of(m) != K_BOUND && stat_mean(m, "area", &v) && v >= best - 1e-12;
        const char *id = str(m, "id");
        putf(f, "<tr data-idx=\"%d\" data-method=\"", idx++);
        esc(f, id ? id : "");
        putf(f, "\"%s><td><span class=\"sw\" style=\"background:%s\"></span>",
             is_best ? " class=\"best\"" : "", style_of(methods, m).color);
        esc(f, label_of(m));
        putf(f, " <span class=\"kind\">%s</span></td><td>",
             (const char *[]){"", "baseline", "upper bound"}[kind_of(m)]);
        chosen(f, m);
        putf(f, "</td><td class=\"n%s\">", is_best ? " best" : "");
        mean_std(f, field(m, "area"), 3);
        put(f, "</td><td class=\"n\">");
        qnc_cell(f, m, n_seeds);
        put(f, "</td><td class=\"n\">");
        mean_std(f, field(m, "peak"), 3);
        put(f, "</td></tr>\n");
    }
    put(f, "</tbody></table></div>\n<p class=\"note\">Mean ± standard deviation over the seeds. "
           "Area: under the deferral curve; bold marks the largest, the oracle (an upper bound) "
           "aside. QNC: the lowest normalised cost at which the method matches the best single "
           "test model (∞: never); its mean and deviation are over the seeds where it is finite. "
           "Peak: the highest accuracy on the curve.</p>\n");
}

/* One CPT statistic: mean ± sd over the seeds where reached, "∞" when
 * never, and in how many seeds it was reached. */
static void cpt_cell(FILE *f, const cJSON *st, int n_seeds)
{
    double fin = 0, mean;
    int has_fin = num(st, "finite", &fin);
    put(f, "<td class=\"n\">");
    if (!cJSON_IsObject(st))
        put(f, "—");
    else if (!num(st, "mean", &mean) || (has_fin && fin <= 0))
        put(f, "<span title=\"never reached\">∞</span>"); /* as QNC */
    else
        mean_std(f, st, 3);
    if (has_fin && n_seeds > 0)
        putf(f, "<br><span class=\"seeds\">%g/%d</span>", fin, n_seeds);
    put(f, "</td>");
}

static void below_cell(FILE *f, const cJSON *b)
{
    double n, of, worst;
    put(f, "<td class=\"n\">");
    if (num(b, "seeds", &n) && num(b, "of", &of)) {
        putf(f, "%g of %g seeds", n, of);
        if (n > 0 && num(b, "max_shortfall", &worst))
            putf(f, "<br><span class=\"seeds\">by up to %.4f</span>", worst);
    } else {
        put(f, "—");
    }
    put(f, "</td>");
}

static const char *const cpt_keys[] = {"80", "90", "95", "100"};

/* The operating points of tools/EVAL_JSON.md, when the document has them. */
static void points_table(FILE *f, const cJSON *ds)
{
    const cJSON *methods = field(ds, "methods"), *m;
    int any = 0;
    cJSON_ArrayForEach(m, methods)
        any |= field(m, "cpt") || field(m, "apgr") || field(m, "best_single_accuracy");
    if (!any)
        return;
    int n_seeds = cJSON_GetArraySize(field(ds, "seeds"));
    put(f, "<h3>Operating points</h3>\n<div class=\"scroll\"><table class=\"points\">\n<thead><tr>"
           "<th>Method</th><th class=\"n\">Best single model</th>");
    for (int t = 0; t < 4; t++)
        putf(f, "<th class=\"n\">CPT %s%% ↓</th>", cpt_keys[t]);
    put(f, "<th class=\"n\">APGR ↑</th><th class=\"n\">Area below Pareto-random</th></tr>"
           "</thead>\n<tbody>\n");
    int idx = 0;
    cJSON_ArrayForEach(m, methods) {
        const char *id = str(m, "id");
        putf(f, "<tr data-idx=\"%d\" data-method=\"", idx++);
        esc(f, id ? id : "");
        putf(f, "\"><td><span class=\"sw\" style=\"background:%s\"></span>",
             style_of(methods, m).color);
        esc(f, label_of(m));
        put(f, "</td><td class=\"n\">");
        mean_std(f, field(m, "best_single_accuracy"), 3);
        put(f, "</td>");
        for (int t = 0; t < 4; t++)
            cpt_cell(f, field(field(m, "cpt"), cpt_keys[t]), n_seeds);
        put(f, "<td class=\"n\">");
        mean_std(f, field(m, "apgr"), 3);
        put(f, "</td>");
        below_cell(f, field(m, "below_pareto_random"));
        put(f, "</tr>\n");
    }
    put(f, "</tbody></table></div>\n<p class=\"note\">Per seed on its test prompts, then mean ± "
           "standard deviation. Best single model: the most accurate test model. CPT x%: the "
           "least cost at which the curve reaches x% of that model's accuracy, relative to that "
           "model's cost (100% is QNC; ∞: never; mean over the seeds where reached, n/seeds). "
           "APGR: the mean over the curve's cost range of the share of the gap between the "
           "cheapest and the best single model that the curve recovers (RouteLLM, Ong et al. "
           "2024). Below Pareto-random: the seeds where the router's Area is lower than "
           "Pareto-random's, and by how much at most.</p>\n");
}

static void headline(FILE *f, const cJSON *ds)
{
    const cJSON *m, *top = NULL, *base = NULL;
    double v, best = -INFINITY, bv;
    cJSON_ArrayForEach(m, field(ds, "methods")) {
        if (kind_of(m) == K_ROUTER && stat_mean(m, "area", &v) && v > best)
            best = v, top = m;
        if (kind_of(m) == K_BASELINE && !base && stat_mean(m, "area", &bv))
            base = m;
    }
    if (!top)
        return;
    put(f, "<p class=\"headline\">Best router by area: <strong>");
    esc(f, label_of(top));
    putf(f, "</strong>, %.3f", best);
    if (base) {
        stat_mean(base, "area", &bv);
        putf(f, " (%+.3f against ", best - bv);
        esc(f, label_of(base));
        putf(f, " at %.3f)", bv);
    }
    put(f, ".</p>\n");
}

static void num_cell(FILE *f, const cJSON *o, const char *key, int bold)
{
    double v;
    putf(f, "<td class=\"n%s\">", bold ? " best" : "");
    if (num(o, key, &v))
        putf(f, "%.3f", v);
    else
        put(f, "—");
    put(f, "</td>");
}

static const char *const task_cols[] = {"s1", "s2", "s3", "bma", "oracle"};

static void tasks_table(FILE *f, const cJSON *t)
{
    if (!cJSON_IsObject(t))
        return;
    double n;
    put(f, "<h3>Task selection</h3>\n");
    put(f, "<p class=\"note\">Leave-one-task-out (Shnitzer et al. 2023): accuracy on the held-out "
           "task of the model each score selects; BMA is the best model on average, Oracle the best "
           "model for that task. Bold: the best of S1–S3 and BMA.");
    if (num(t, "n_tasks", &n))
        putf(f, " %g tasks.", n);
    put(f, "</p>\n<div class=\"scroll\"><table class=\"tasks\">\n<thead><tr><th>Task</th>"
           "<th class=\"n\">S1</th><th class=\"n\">S2</th><th class=\"n\">S3</th>"
           "<th class=\"n\">BMA</th><th class=\"n\">Oracle</th><th>Gate kept BMA</th></tr>"
           "</thead>\n<tbody>\n");
    const cJSON *r;
    cJSON_ArrayForEach(r, field(t, "rows")) {
        double best = -INFINITY, v;
        for (int i = 0; i < 4; i++)
            if (num(r, task_cols[i], &v))
                best = fmax(best, v);
        put(f, "<tr><td>");
        esc_or_dash(f, str(r, "task"));
        put(f, "</td>");
        for (int i = 0; i < 5; i++)
            num_cell(f, r, task_cols[i], i < 4 && num(r, task_cols[i], &v) && v >= best - 1e-12);
        const cJSON *g = field(r, "gate_kept_bma");
        putf(f, "<td>%s</td></tr>\n", cJSON_IsTrue(g) ? "yes" : cJSON_IsFalse(g) ? "no" : "—");
    }
    put(f, "</tbody>\n");
    const cJSON *mean = field(t, "mean");
    if (cJSON_IsObject(mean)) {
        put(f, "<tfoot><tr><td>Mean</td>");
        for (int i = 0; i < 5; i++)
            num_cell(f, mean, task_cols[i], 0);
        put(f, "<td></td></tr></tfoot>\n");
    }
    put(f, "</table></div>\n");
}

static void fidelity_table(FILE *f, const cJSON *fid)
{
    static const struct {
        const char *key, *label, *fmt;
    } known[] = {
        {"same_decisions", "Same routing decisions as float32", "%.2f %%"},
        {"area_int8", "Area, int8 core", "%.4f"},
        {"area_f32", "Area, float32 reference", "%.4f"},
        {"delta_area", "Δ area (int8 − float32)", "%+.4f"},
        {"recall_at_10", "Recall@10 of the neighbours", "%.4f"},
        {"recall_at_10_prefilter", "Recall@10 with the prefilter", "%.4f"},
    };
    if (!cJSON_IsObject(fid))
        return;
    put(f, "<h3>Fidelity: int8 core against the float32 reference</h3>\n"
           "<table class=\"fidelity\"><tbody>\n");
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        double v;
        putf(f, "<tr><td>%s</td><td class=\"n\">", known[i].label);
        if (num(fid, known[i].key, &v))
            putf(f, known[i].fmt, i == 0 ? 100 * v : v);
        else
            put(f, "—");
        put(f, "</td></tr>\n");
    }
    /* Fields newer than this report still show, under their own names. */
    const cJSON *v;
    cJSON_ArrayForEach(v, fid) {
        size_t i = 0;
        while (i < sizeof known / sizeof *known && strcmp(v->string, known[i].key))
            i++;
        if (i < sizeof known / sizeof *known)
            continue;
        put(f, "<tr><td><code>");
        esc(f, v->string);
        put(f, "</code></td><td class=\"n\">");
        scalar(f, v);
        put(f, "</td></tr>\n");
    }
    put(f, "</tbody></table>\n");
}

/* ---- eval --local (issue 16): Area against the local outcomes seen ---- */

static const struct {
    const char *key, *label, *column, *dash;
} local_series[] = {
    {"pack", "pack only", "Pack only", "6 4"},
    {"local", "local store", "Local", NULL},
    {"level", "local store + level term", "Local + level", NULL},
    {"rebuilt", "pack rebuilt with the outcomes", "Rebuilt", "2 3"},
};
#define N_LOCAL_SERIES (sizeof local_series / sizeof *local_series)

static axes local_axes(const cJSON *pts)
{
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY, x, y;
    const cJSON *p;
    cJSON_ArrayForEach(p, pts) {
        if (num(p, "outcomes", &x))
            xmax = fmax(xmax, x);
        for (size_t k = 0; k < N_LOCAL_SERIES; k++)
            if (num(p, local_series[k].key, &y))
                ymin = fmin(ymin, y), ymax = fmax(ymax, y);
    }
    if (ymin > ymax)
        ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-3)
        ymin -= 0.005, ymax += 0.005;
    return axes_around(0, xmax, ymin, ymax, 0.05);
}

static void local_figure(FILE *f, const cJSON *pts)
{
    axes a = local_axes(pts);
    put(f, "<div class=\"figure\">\n");
    putf(f, "<svg class=\"plot\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"Area on the "
            "user's later prompts against the local outcomes seen\">\n", VW, VH);
    plot_axes(f, &a, "Local outcomes seen on the device", NULL, "Area (later prompts)");
    for (size_t k = 0; k < N_LOCAL_SERIES; k++) {
        const cJSON *p;
        double x, y;
        int n = 0;
        putf(f, "<path class=\"curve\" data-series=\"%s\" stroke=\"%s\"", local_series[k].key,
             palette[k]);
        if (local_series[k].dash)
            putf(f, " stroke-dasharray=\"%s\"", local_series[k].dash);
        put(f, " d=\"");
        cJSON_ArrayForEach(p, pts)
            if (num(p, "outcomes", &x) && num(p, local_series[k].key, &y))
                putf(f, "%c%.1f %.1f", n++ ? 'L' : 'M', px(&a, x), py(&a, y));
        put(f, "\"/>\n");
        cJSON_ArrayForEach(p, pts)
            if (num(p, "outcomes", &x) && num(p, local_series[k].key, &y))
                putf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\"/>\n", px(&a, x),
                     py(&a, y), palette[k]);
    }
    put(f, "</svg>\n<ul class=\"legend\">\n");
    for (size_t k = 0; k < N_LOCAL_SERIES; k++) {
        put(f, "<li class=\"static\">");
        legend_swatch(f, (style){palette[k], local_series[k].dash});
        putf(f, "<span>%s</span></li>\n", local_series[k].label);
    }
    put(f, "</ul>\n</div>\n");
}

static void local_section(FILE *f, const cJSON *local)
{
    const cJSON *sc;
    cJSON_ArrayForEach(sc, local) {
        const cJSON *pts = field(sc, "points"), *p;
        put(f, "<h3>On-device learning: ");
        esc_or_dash(f, str(sc, "scenario"));
        put(f, "</h3>\n");
        double seeds;
        if (num(sc, "seeds", &seeds))
            putf(f, "<p class=\"note\">Mean over %.0f seeds; bandit feedback (only the routed "
                    "model's outcome is revealed).</p>\n", seeds);
        if (!cJSON_GetArraySize(pts)) {
            put(f, "<p class=\"note\">No points: too few prompts for a stream.</p>\n");
            continue;
        }
        local_figure(f, pts);
        put(f, "<div class=\"scroll\"><table class=\"points\">\n<thead><tr><th>Outcomes</th>"
               "<th>Seeds</th>");
        for (size_t k = 0; k < N_LOCAL_SERIES; k++)
            putf(f, "<th>%s</th>", local_series[k].column);
        put(f, "<th>Level − pack</th></tr></thead>\n<tbody>\n");
        cJSON_ArrayForEach(p, pts) {
            double v, pack, level;
            put(f, "<tr>");
            putf(f, "<td class=\"n\">%.0f</td>", num(p, "outcomes", &v) ? v : NAN);
            putf(f, "<td class=\"n\">%.0f</td>", num(p, "seeds", &v) ? v : NAN);
            for (size_t k = 0; k < N_LOCAL_SERIES; k++)
                putf(f, "<td class=\"n\">%.4f</td>", num(p, local_series[k].key, &v) ? v : NAN);
            if (num(p, "pack", &pack) && num(p, "level", &level))
                putf(f, "<td class=\"n\">%+.4f</td>", level - pack);
            else
                put(f, "<td class=\"n\">—</td>");
            put(f, "</tr>\n");
        }
        put(f, "</tbody></table></div>\n");
    }
}

/* ---- provenance ---- */

static void dt_text(FILE *f, const char *term, const char *value, int mono)
{
    putf(f, "<dt>%s</dt><dd%s>", term, mono && value ? " class=\"hash\"" : "");
    esc_or_dash(f, value);
    put(f, "</dd>\n");
}

static void dt_num(FILE *f, const char *term, const cJSON *o, const char *key)
{
    double v;
    putf(f, "<dt>%s</dt><dd>", term);
    if (num(o, key, &v))
        putf(f, "%g", v);
    else
        put(f, "—");
    put(f, "</dd>\n");
}

static void ds_provenance(FILE *f, const cJSON *ds)
{
    const cJSON *emb = field(ds, "embedder"), *seeds = field(ds, "seeds");
    put(f, "<dl class=\"prov\">\n");
    dt_text(f, "Path", str(ds, "path"), 1);
    dt_num(f, "Prompts", ds, "n_prompts");
    dt_num(f, "Models", ds, "n_models");
    dt_text(f, "Cost unit", str(ds, "cost_unit"), 0);
    dt_text(f, "Embedder", str(emb, "name"), 0);
    dt_text(f, "Embedder sha256", str(emb, "sha256"), 1);
    if (str(ds, "pack_sha256"))
        dt_text(f, "Pack sha256", str(ds, "pack_sha256"), 1);
    put(f, "<dt>Seeds</dt><dd>");
    if (cJSON_GetArraySize(seeds) > 0) {
        const cJSON *s;
        int i = 0;
        cJSON_ArrayForEach(s, seeds) {
            if (i++)
                put(f, ", ");
            scalar(f, s);
        }
        putf(f, " <span class=\"pm\">(%d)</span>", i);
    } else {
        put(f, "—");
    }
    put(f, "</dd>\n</dl>\n");
}

int trh_report_html(const cJSON *results, FILE *out)
{
    char why[160];
    if (trh_report_check(results, why, sizeof why))
        return trh_err("not an evaluation results document: %s (see tools/EVAL_JSON.md)", why);
    const cJSON *datasets = field(results, "datasets"), *ds;
    FILE *f = out;
    put(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
           "<title>tinyroute evaluation");
    int i = 0;
    cJSON_ArrayForEach(ds, datasets) {
        put(f, i++ ? ", " : ": ");
        esc(f, str(ds, "name"));
    }
    putf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<main>\n", css);
    put(f, "<header class=\"top\">\n<h1>tinyroute evaluation report</h1>\n<p class=\"sub\">");
    esc_or_dash(f, str(results, "protocol"));
    put(f, "</p>\n<dl class=\"prov\">\n");
    dt_text(f, "tinyroute", str(results, "tinyroute_version"), 0);
    dt_text(f, "Kernel", str(results, "kernel"), 0);
    dt_text(f, "Created", str(results, "created"), 0);
    put(f, "<dt>Command</dt><dd>");
    if (str(results, "command")) {
        put(f, "<code>");
        esc(f, str(results, "command"));
        put(f, "</code>");
    } else {
        put(f, "—");
    }
    put(f, "</dd>\n</dl>\n");
    if (cJSON_GetArraySize(datasets) > 1) {
        put(f, "<nav class=\"toc\">Data sets: ");
        i = 0;
        cJSON_ArrayForEach(ds, datasets) {
            putf(f, "<a href=\"#ds-%d\">", i++);
            esc(f, str(ds, "name"));
            put(f, "</a>");
        }
        put(f, "</nav>\n");
    }
    put(f, "</header>\n");
    if (!cJSON_GetArraySize(datasets))
        put(f, "<p class=\"note\">The document holds no data sets.</p>\n");
    i = 0;
    cJSON_ArrayForEach(ds, datasets) {
        putf(f, "<section class=\"ds\" id=\"ds-%d\">\n<h2>", i);
        esc(f, str(ds, "name"));
        put(f, "</h2>\n");
        ds_provenance(f, ds);
        const cJSON *local = field(ds, "local");
        if (cJSON_GetArraySize(field(ds, "methods")) || !cJSON_GetArraySize(local)) {
            headline(f, ds);
            figure(f, ds, i);
            metrics_table(f, ds);
            points_table(f, ds);
            tasks_table(f, field(ds, "tasks"));
            fidelity_table(f, field(ds, "fidelity"));
        }
        local_section(f, local);
        put(f, "</section>\n");
        i++;
    }
    putf(f, "<footer>Written by <code>tinyroute report</code>. Curves: mean over the seeds on a "
            "fixed grid of costs; cost normalised per seed between the cheapest and the costliest "
            "test model.</footer>\n</main>\n<script>\n%s</script>\n</body>\n</html>\n", js);
    if (fflush(f) || ferror(f))
        return trh_err("writing the report failed");
    return 0;
}
