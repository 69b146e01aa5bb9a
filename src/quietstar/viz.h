// viz.h: per-token view of what thinking does to a text (the paper's
// Figure 1): for every token its NLL without a thought and after the thought
// sampled at the position before it (eval mode, SPEC section 5), the thought
// itself and the mixing weight; and a self-contained HTML page showing the
// text with each token coloured by base NLL - think NLL (green = the thought
// helped, red = it hurt), details on hover and click.
#ifndef QS_QUIETSTAR_VIZ_H
#define QS_QUIETSTAR_VIZ_H

#include <stdio.h>
#include "quietstar/nll_eval.h"

// Per-token data of one text tokens[0..n) (tokens[0] is normally BOS):
// appends n-1 records (pos 1..n-1) to `rec` (which must be empty or hold
// records with thoughts of the same length). n in [3, max_seq_len].
qs_status qs_viz_compute(const qs_model *m, const qs_qstar_opts *o, const int *tokens, int n, qs_rng *rng,
                         qs_nll_tokens *rec);

typedef struct {
    const char *title;    // page heading (e.g. the text file's name); may be NULL
    const char *subtitle; // e.g. model path and settings; may be NULL
    int n_ahead;
} qs_viz_page;

// Writes the HTML page for tokens[0..n) and their records (as filled by
// qs_viz_compute) to `f`. No external resources: inline CSS and JS only;
// every text is escaped. Returns QS_ERR_IO if writing fails.
qs_status qs_viz_write_html(FILE *f, const qs_tokenizer *tok, const int *tokens, int n, const qs_nll_tokens *rec,
                            const qs_viz_page *page);

// Helpers (exposed for the tests): HTML-escapes s into f (& < > " '),
// replacing invalid UTF-8 with U+FFFD; and writes s as a JSON string literal
// safe inside <script> (also escapes < > & and U+2028/9).
void qs_viz_html_escape(FILE *f, const char *s);
void qs_viz_js_string(FILE *f, const char *s);

#endif
