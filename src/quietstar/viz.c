// viz.c: per-token thought effects and the HTML page (see viz.h).
#include "quietstar/viz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

qs_status qs_viz_compute(const qs_model *m, const qs_qstar_opts *o, const int *tokens, int n, qs_rng *rng,
                         qs_nll_tokens *rec) {
    if (n < 3) return qs_error(QS_ERR_ARG, "the text needs at least 2 tokens after BOS (has %d)", n - 1);
    if (n > m->cfg.max_seq_len) return qs_error(QS_ERR_ARG, "%d tokens exceed the model's max_seq_len %d", n, m->cfg.max_seq_len);
    // one window holding the whole text
    size_t doc0 = 0;
    qs_token_stream s = {.tokens = (int *)tokens, .n_tokens = (size_t)n, .doc_start = &doc0, .n_docs = 1};
    qs_nll_summary sum;
    return qs_nll_eval(m, &s, o, 1, 1, n, rng, rec, NULL, NULL, &sum);
}

// Length of the UTF-8 character at s[0..n): > 0 valid, 0 invalid, -1 a
// valid but incomplete prefix (needs more bytes).
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4)) return 0;
    for (int k = 1; k < len; k++) {
        if ((size_t)k >= n) return -1;
        if ((s[k] & 0xC0) != 0x80) return 0;
        if (k == 1 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
                       (c == 0xF4 && s[1] > 0x8F)))
            return 0;
    }
    return len;
}

// Calls emit(ud, bytes, len) for each valid character of s (invalid bytes
// become U+FFFD). Returns the number of trailing bytes that form an
// incomplete character when `keep_tail` (they are not emitted).
typedef void (*emit_fn)(FILE *f, const char *c, int len);
static size_t walk_utf8(FILE *f, const char *s, size_t n, int keep_tail, emit_fn emit) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int l = utf8_len(u + i, n - i);
        if (l < 0 && keep_tail) return n - i;
        if (l <= 0) {
            emit(f, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            emit(f, s + i, l);
            i += (size_t)l;
        }
    }
    return 0;
}

static void emit_html(FILE *f, const char *c, int len) {
    if (len == 1) {
        switch (c[0]) {
        case '&': fputs("&amp;", f); return;
        case '<': fputs("&lt;", f); return;
        case '>': fputs("&gt;", f); return;
        case '"': fputs("&quot;", f); return;
        case '\'': fputs("&#39;", f); return;
        case '\r': return;
        default:
            if ((unsigned char)c[0] < 0x20 && c[0] != '\n' && c[0] != '\t') {
                fputs("\xEF\xBF\xBD", f);
                return;
            }
        }
    }
    fwrite(c, 1, (size_t)len, f);
}

static void emit_js(FILE *f, const char *c, int len) {
    if (len == 1) {
        unsigned char b = (unsigned char)c[0];
        if (b == '"' || b == '\\') { fputc('\\', f); fputc(b, f); return; }
        if (b == '\n') { fputs("\\n", f); return; }
        if (b < 0x20 || b == '<' || b == '>' || b == '&' || b == 0x7f) { fprintf(f, "\\u%04x", b); return; }
    }
    if (len == 3 && (unsigned char)c[0] == 0xE2 && (unsigned char)c[1] == 0x80 &&
        ((unsigned char)c[2] == 0xA8 || (unsigned char)c[2] == 0xA9)) {
        fprintf(f, "\\u%04x", (unsigned char)c[2] == 0xA8 ? 0x2028 : 0x2029);
        return;
    }
    fwrite(c, 1, (size_t)len, f);
}

void qs_viz_html_escape(FILE *f, const char *s) { walk_utf8(f, s, strlen(s), 0, emit_html); }

void qs_viz_js_string(FILE *f, const char *s) {
    fputc('"', f);
    walk_utf8(f, s, strlen(s), 0, emit_js);
    fputc('"', f);
}

// Decoded thought text of record k (pieces after the context token).
static void thought_text(const qs_tokenizer *tok, const qs_nll_tokens *rec, size_t k, char *out, size_t cap) {
    const qs_nll_token *t = &rec->t[k];
    const int *th = rec->thoughts + t->thought;
    int prev = t->prev;
    size_t o = 0;
    out[0] = 0;
    for (int u = 0; u < rec->n_thought; u++) {
        const char *p = qs_tokenizer_piece(tok, prev, th[u]);
        size_t l = strlen(p);
        if (o + l + 1 > cap) break;
        memcpy(out + o, p, l + 1);
        o += l;
        prev = th[u];
    }
}

static const char *CSS =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px 32px 200px;color:#222;background:#fafafa}"
    "h1{font-size:20px;margin:0 0 4px}.sub{color:#666;font-size:13px;margin-bottom:12px}"
    ".stats{font-size:14px;margin:8px 0 14px}.stats td{padding:1px 12px 1px 0}"
    ".legend{display:flex;align-items:center;gap:8px;font-size:12px;color:#555;margin-bottom:16px}"
    ".bar{width:240px;height:12px;border:1px solid #ccc;"
    "background:linear-gradient(to right,rgba(220,30,30,.85),rgba(255,255,255,0),rgba(20,160,60,.85))}"
    "#text{white-space:pre-wrap;font-family:ui-monospace,'DejaVu Sans Mono',Menlo,monospace;font-size:15px;"
    "line-height:1.9;background:#fff;border:1px solid #ddd;padding:16px;border-radius:6px}"
    ".t{cursor:pointer;border-radius:2px}.t:hover{outline:1px solid #333}.t.sel{outline:2px solid #000}"
    "#panel{position:fixed;right:16px;bottom:16px;width:420px;max-height:45vh;overflow:auto;background:#fff;"
    "border:1px solid #bbb;border-radius:6px;box-shadow:0 2px 10px rgba(0,0,0,.15);padding:10px 14px;font-size:13px}"
    "#panel .k{color:#777;display:inline-block;width:96px}#panel .th{font-family:ui-monospace,monospace;"
    "white-space:pre-wrap;background:#f3f3f3;padding:6px;border-radius:4px;margin-top:4px}"
    "#tip{position:fixed;pointer-events:none;background:#222;color:#fff;font-size:12px;padding:6px 8px;"
    "border-radius:4px;max-width:380px;white-space:pre-wrap;display:none;z-index:9}";

static const char *JS =
    "(function(){var P=document.getElementById('panel'),T=document.getElementById('tip'),sel=null;"
    "function f(x){return (x>=0?'+':'')+x.toFixed(3);}"
    "function row(k,v){var d=document.createElement('div'),s=document.createElement('span');"
    "s.className='k';s.textContent=k;d.appendChild(s);d.appendChild(document.createTextNode(v));return d;}"
    "function info(i){var r=D[i];return 'token '+JSON.stringify(r[3])+' (id '+r[6]+')\\n'+"
    "'NLL base '+r[0].toFixed(3)+'  think '+r[1].toFixed(3)+'  \\u0394 '+f(r[0]-r[1])+'\\n'+"
    "'mixing weight '+r[2].toFixed(3)+'\\nthought: '+r[4];}"
    "function show(i){var r=D[i];P.textContent='';var h=document.createElement('b');"
    "h.textContent='token '+JSON.stringify(r[3]);P.appendChild(h);"
    "P.appendChild(row('id',String(r[6])));P.appendChild(row('position',String(r[7])));"
    "P.appendChild(row('base NLL',r[0].toFixed(4)));P.appendChild(row('think NLL',r[1].toFixed(4)));"
    "P.appendChild(row('helped by',f(r[0]-r[1])+' nats'));P.appendChild(row('mix weight',r[2].toFixed(4)));"
    "P.appendChild(row('thought ids',r[5].join(' ')));var t=document.createElement('div');t.className='th';"
    "t.textContent=r[4];P.appendChild(row('thought',''));P.appendChild(t);}"
    "var sp=document.querySelectorAll('.t');for(var k=0;k<sp.length;k++){(function(s){var i=+s.dataset.i;"
    "s.removeAttribute('title');" // the script's tooltip replaces the plain title (kept for no-JS viewers)
    "s.addEventListener('click',function(){if(sel)sel.classList.remove('sel');sel=s;s.classList.add('sel');show(i);});"
    "s.addEventListener('mousemove',function(e){T.textContent=info(i);T.style.display='block';"
    "T.style.left=Math.min(e.clientX+14,window.innerWidth-400)+'px';T.style.top=(e.clientY+18)+'px';});"
    "s.addEventListener('mouseleave',function(){T.style.display='none';});})(sp[k]);}"
    "var m=/^#t(\\d+)$/.exec(location.hash);if(m&&sp[+m[1]]){sp[+m[1]].click();sp[+m[1]].scrollIntoView();}})();";

qs_status qs_viz_write_html(FILE *f, const qs_tokenizer *tok, const int *tokens, int n, const qs_nll_tokens *rec,
                            const qs_viz_page *page) {
    (void)tokens, (void)n;
    char *tt = malloc(65536);
    if (!tt) return qs_error(QS_ERR_NOMEM, "out of memory for the page");
    // colour scale: the 95th percentile of |delta| (at least 0.05 nats)
    double scale = 0.05, sb = 0, st = 0, sm = 0;
    if (rec->n) {
        float *a = malloc(rec->n * sizeof(float));
        if (a) {
            for (size_t k = 0; k < rec->n; k++) a[k] = fabsf(rec->t[k].nll_base - rec->t[k].nll_think);
            for (size_t i = 1; i < rec->n; i++) { // insertion sort is fine for a page of tokens
                float x = a[i];
                size_t j = i;
                while (j > 0 && a[j - 1] > x) { a[j] = a[j - 1]; j--; }
                a[j] = x;
            }
            double p = a[(size_t)(0.95 * (rec->n - 1))];
            if (p > scale) scale = p;
            free(a);
        }
        for (size_t k = 0; k < rec->n; k++) sb += rec->t[k].nll_base, st += rec->t[k].nll_think, sm += rec->t[k].mix_w;
        sb /= rec->n, st /= rec->n, sm /= rec->n;
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", f);
    qs_viz_html_escape(f, page && page->title ? page->title : "qstar viz");
    fprintf(f, "</title>\n<style>%s</style></head><body>\n<h1>", CSS);
    qs_viz_html_escape(f, page && page->title ? page->title : "qstar viz");
    fputs("</h1>\n<div class=\"sub\">", f);
    if (page && page->subtitle) qs_viz_html_escape(f, page->subtitle);
    fprintf(f, "</div>\n<table class=\"stats\"><tr><td>tokens</td><td>%zu</td></tr>"
               "<tr><td>mean NLL without thought</td><td>%.4f</td></tr>"
               "<tr><td>mean NLL after thought</td><td>%.4f</td></tr>"
               "<tr><td>mean change (base &minus; think)</td><td>%+.4f nats</td></tr>"
               "<tr><td>mean mixing weight</td><td>%.4f</td></tr></table>\n",
            rec->n, sb, st, sb - st, sm);
    fprintf(f, "<div class=\"legend\"><span>thought hurt</span><div class=\"bar\"></div><span>thought helped</span>"
               "<span>(full colour at |&Delta;| &ge; %.3f nats; hover or click a token)</span></div>\n<div id=\"text\">",
            scale);
    // token spans; a character split over byte tokens is shown in the span of
    // the token that completes it
    char pend[16];
    size_t plen = 0;
    for (size_t k = 0; k < rec->n; k++) {
        const qs_nll_token *t = &rec->t[k];
        const char *piece = qs_tokenizer_piece(tok, t->prev, t->token);
        size_t l = strlen(piece);
        char buf[512];
        size_t bl = 0;
        if (plen + l < sizeof buf) {
            memcpy(buf, pend, plen);
            memcpy(buf + plen, piece, l);
            bl = plen + l;
        }
        double d = t->nll_base - t->nll_think, a = fmin(1.0, fabs(d) / scale) * 0.85;
        int r = d >= 0 ? 20 : 220, g = d >= 0 ? 160 : 30, b = d >= 0 ? 60 : 30;
        if (!isfinite(a)) a = 0;
        fprintf(f, "<span class=\"t\" data-i=\"%zu\" style=\"background:rgba(%d,%d,%d,%.3f)\" title=\"", k, r, g, b, a);
        thought_text(tok, rec, k, tt, 65536);
        fprintf(f, "base %.3f, think %.3f, &#916; %+.3f, w %.3f&#10;thought: ", t->nll_base, t->nll_think, d,
                t->mix_w);
        qs_viz_html_escape(f, tt);
        fputs("\">", f);
        size_t tail = walk_utf8(f, buf, bl, 1, emit_html);
        if (tail > sizeof pend) tail = 0;
        memcpy(pend, buf + bl - tail, tail);
        plen = tail;
        fputs("</span>", f);
    }
    fputs("</div>\n<div id=\"panel\"><b>Click a token</b> to see its thought.<br>Colour: NLL without the thought "
          "minus NLL after it (green = the thought made the true token more likely). Link to a token: page.html#tN.</div>\n<div id=\"tip\"></div>\n"
          "<script>\nvar D=[\n", f);
    for (size_t k = 0; k < rec->n; k++) {
        const qs_nll_token *t = &rec->t[k];
        fprintf(f, "[%.5g,%.5g,%.5g,", t->nll_base, t->nll_think, t->mix_w);
        qs_viz_js_string(f, qs_tokenizer_piece(tok, t->prev, t->token));
        fputc(',', f);
        thought_text(tok, rec, k, tt, 65536);
        qs_viz_js_string(f, tt);
        fputs(",[", f);
        for (int u = 0; u < rec->n_thought; u++) fprintf(f, "%s%d", u ? "," : "", rec->thoughts[t->thought + u]);
        fprintf(f, "],%d,%d]%s\n", t->token, t->pos, k + 1 < rec->n ? "," : "");
    }
    fprintf(f, "];\n%s\n</script>\n</body></html>\n", JS);
    free(tt);
    if (ferror(f)) return qs_error(QS_ERR_IO, "writing the HTML page failed");
    return QS_OK;
}
