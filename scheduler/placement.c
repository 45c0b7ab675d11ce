/* placement.c -- member_of expressions and the placement of tasks on nodes (see placement.h).
 *
 * A batch keeps the list of candidate nodes (active, matching every member_of, free of the service
 * when distinct_instance, with room for the task); nodes that fill up leave it, so a placement costs
 * O(min(candidates, PL_SAMPLE) x strategies) however full the cluster gets. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/alloc.h"
#include "placement.h"

/* ---- expressions ---- */

enum { E_OR, E_AND, E_EQ, E_NE, E_IN, E_NIN, E_EXISTS, E_NEXISTS };

struct pl_expr {
    int op;
    struct pl_expr *a, *b; /* E_OR, E_AND */
    char *attr;            /* comparisons: the attribute's name */
    char **vals;
    size_t nvals;
};

struct parser {
    const char *s;
    size_t pos;
    char tok[256];
    size_t tok_at;
    char *err;
    int depth; /* parentheses open, and conditions so far: bounded, so no input can exhaust the stack */
    int terms;
};

#define MAX_DEPTH 32
#define MAX_TERMS 256

static void perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(struct parser *p, const char *fmt, ...)
{
    if (p->err)
        return;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg) + 64;
    p->err = xmalloc(len);
    snprintf(p->err, len, "%s at position %zu", msg, p->tok_at + 1);
}

static bool word_char(char c)
{
    return c && (isalnum((unsigned char)c) || strchr("_.:/-*", c));
}

/* Reads the next token into p->tok ("" at the end). */
static void next(struct parser *p)
{
    while (isspace((unsigned char)p->s[p->pos]))
        p->pos++;
    p->tok_at = p->pos;
    const char *c = p->s + p->pos;
    size_t n = 0;
    if (!*c) {
        p->tok[0] = 0;
        return;
    }
    if ((c[0] == '=' || c[0] == '!') && c[1] == '=') {
        n = 2;
    } else if (strchr("()[],", c[0])) {
        n = 1;
    } else if (c[0] == '\'' || c[0] == '"') {
        const char *end = strchr(c + 1, c[0]);
        if (!end) {
            perr(p, "unterminated quote");
            p->tok[0] = 0;
            p->pos += strlen(c);
            return;
        }
        n = (size_t)(end - c) + 1;
    } else if (c[0] == '!' && word_char(c[1])) {
        for (n = 1; word_char(c[n]); n++)
            ;
    } else if (word_char(c[0])) {
        for (n = 0; word_char(c[n]); n++)
            ;
    } else {
        perr(p, "unexpected character '%c'", c[0]);
        p->tok[0] = 0;
        p->pos++;
        return;
    }
    if (n >= sizeof p->tok)
        n = sizeof p->tok - 1;
    memcpy(p->tok, c, n);
    p->tok[n] = 0;
    p->pos += n;
}

static bool is_tok(struct parser *p, const char *t)
{
    return strcmp(p->tok, t) == 0;
}

/* A value token: a word or a quoted string (quotes removed). */
static char *value(struct parser *p)
{
    if (!p->tok[0] || strchr("()[],", p->tok[0]) || is_tok(p, "==") || is_tok(p, "!=")) {
        perr(p, "expected a value, found %s%s%s", p->tok[0] ? "'" : "", p->tok[0] ? p->tok : "the end",
             p->tok[0] ? "'" : "");
        return NULL;
    }
    size_t n = strlen(p->tok);
    char *v = p->tok[0] == '\'' || p->tok[0] == '"' ? xstrndup(p->tok + 1, n - 2) : xstrdup(p->tok);
    next(p);
    return v;
}

static struct pl_expr *parse_or(struct parser *p);

static struct pl_expr *parse_factor(struct parser *p)
{
    if (is_tok(p, "(")) {
        if (++p->depth > MAX_DEPTH) {
            perr(p, "parentheses nested deeper than %d", MAX_DEPTH);
            return NULL;
        }
        next(p);
        struct pl_expr *e = parse_or(p);
        if (!p->err && !is_tok(p, ")"))
            perr(p, "expected ')'");
        next(p);
        p->depth--;
        return e;
    }
    if (++p->terms > MAX_TERMS) {
        perr(p, "more than %d conditions", MAX_TERMS);
        return NULL;
    }
    if (strncmp(p->tok, "attribute:", 10) != 0 || !p->tok[10]) {
        perr(p, "expected attribute:NAME, found %s%s%s", p->tok[0] ? "'" : "", p->tok[0] ? p->tok : "the end",
             p->tok[0] ? "'" : "");
        return NULL;
    }
    struct pl_expr *e = xcalloc(1, sizeof *e);
    e->attr = xstrdup(p->tok + 10);
    next(p);
    if (is_tok(p, "==") || is_tok(p, "!=")) {
        e->op = is_tok(p, "==") ? E_EQ : E_NE;
        next(p);
        e->vals = xcalloc(1, sizeof *e->vals);
        if ((e->vals[0] = value(p)))
            e->nvals = 1;
    } else if (is_tok(p, "in") || is_tok(p, "!in")) {
        e->op = is_tok(p, "in") ? E_IN : E_NIN;
        next(p);
        const char *close = is_tok(p, "[") ? "]" : is_tok(p, "(") ? ")" : NULL;
        if (!close) {
            perr(p, "expected '[' after in");
            return e;
        }
        next(p);
        while (!p->err) {
            char *v = value(p);
            if (!v)
                break;
            e->vals = xrealloc(e->vals, (e->nvals + 1) * sizeof *e->vals);
            e->vals[e->nvals++] = v;
            if (is_tok(p, close)) {
                next(p);
                break;
            }
            if (!is_tok(p, ",")) {
                perr(p, "expected ',' or '%s'", close);
                break;
            }
            next(p);
        }
    } else if (is_tok(p, "exists") || is_tok(p, "!exists")) {
        e->op = is_tok(p, "exists") ? E_EXISTS : E_NEXISTS;
        next(p);
    } else {
        perr(p, "expected ==, !=, in, !in or exists after attribute:%s", e->attr);
    }
    return e;
}

static struct pl_expr *binary(int op, struct pl_expr *a, struct pl_expr *b)
{
    struct pl_expr *e = xcalloc(1, sizeof *e);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static struct pl_expr *parse_and(struct parser *p)
{
    struct pl_expr *e = parse_factor(p);
    while (!p->err && is_tok(p, "and")) {
        next(p);
        e = binary(E_AND, e, parse_factor(p));
    }
    return e;
}

static struct pl_expr *parse_or(struct parser *p)
{
    struct pl_expr *e = parse_and(p);
    while (!p->err && is_tok(p, "or")) {
        next(p);
        e = binary(E_OR, e, parse_and(p));
    }
    return e;
}

struct pl_expr *pl_expr_parse(const char *text, char **err)
{
    struct parser p = {.s = text};
    next(&p);
    struct pl_expr *e = parse_or(&p);
    if (!p.err && p.tok[0])
        perr(&p, "unexpected '%s'", p.tok);
    if (p.err) {
        pl_expr_free(e);
        *err = p.err;
        return NULL;
    }
    return e;
}

void pl_expr_free(struct pl_expr *e)
{
    if (!e)
        return;
    pl_expr_free(e->a);
    pl_expr_free(e->b);
    free(e->attr);
    for (size_t i = 0; i < e->nvals; i++)
        free(e->vals[i]);
    free(e->vals);
    free(e);
}

bool pl_expr_eval(const struct pl_expr *e, json_t *attributes)
{
    if (e->op == E_OR)
        return pl_expr_eval(e->a, attributes) || pl_expr_eval(e->b, attributes);
    if (e->op == E_AND)
        return pl_expr_eval(e->a, attributes) && pl_expr_eval(e->b, attributes);
    const char *v = json_string_value(json_object_get(attributes, e->attr));
    if (e->op == E_EXISTS || e->op == E_NEXISTS)
        return (v != NULL) == (e->op == E_EXISTS);
    bool found = false;
    for (size_t i = 0; v && i < e->nvals && !found; i++)
        found = strcmp(v, e->vals[i]) == 0;
    return e->op == E_EQ || e->op == E_IN ? found : !found;
}

/* ---- placement ---- */

#define MAX_STRATEGIES 8

struct pl_batch {
    struct pl_node *nodes;
    size_t n;
    struct pl_request req;
    int *svc_count;
    size_t *cand, *pos, ncand; /* candidates, and each node's index in cand (SIZE_MAX: not one) */
    struct spread {
        int *val;   /* node -> value id of the attribute */
        int *count; /* value id -> the service's tasks on nodes with that value */
    } sp[MAX_STRATEGIES];
    uint64_t rng;
};

static uint64_t rnd(struct pl_batch *b)
{
    uint64_t x = b->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return b->rng = x;
}

static bool fits(const struct pl_batch *b, size_t i)
{
    const struct pl_node *nd = &b->nodes[i];
    return nd->mem - nd->mem_used >= b->req.mem && nd->cpu - nd->cpu_used >= b->req.cpu;
}

static bool matches(const struct pl_request *req, const struct pl_node *nd)
{
    for (size_t k = 0; k < req->nmember_of; k++)
        if (!pl_expr_eval(req->member_of[k], nd->attributes))
            return false;
    return true;
}

struct pl_batch *pl_batch_new(struct pl_node *nodes, size_t n, const struct pl_request *req, const int *svc_count,
                              uint64_t seed)
{
    struct pl_batch *b = xcalloc(1, sizeof *b);
    b->nodes = nodes;
    b->n = n;
    b->req = *req;
    if (b->req.nstrategies > MAX_STRATEGIES)
        b->req.nstrategies = MAX_STRATEGIES;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    b->svc_count = xcalloc(n ? n : 1, sizeof *b->svc_count);
    if (svc_count)
        memcpy(b->svc_count, svc_count, n * sizeof *b->svc_count);
    b->cand = xmalloc((n ? n : 1) * sizeof *b->cand);
    b->pos = xmalloc((n ? n : 1) * sizeof *b->pos);
    for (size_t i = 0; i < n; i++) {
        b->pos[i] = SIZE_MAX;
        if (nodes[i].active && (!req->containers || nodes[i].containers) && fits(b, i) && !(req->distinct_instance && b->svc_count[i]) && matches(req, &nodes[i])) {
            b->pos[i] = b->ncand;
            b->cand[b->ncand++] = i;
        }
    }
    for (size_t k = 0; k < b->req.nstrategies; k++) {
        const struct pl_strategy *s = &b->req.strategies[k];
        if (s->type != PL_SPREAD || strncmp(s->field, "attribute:", 10) != 0)
            continue;
        /* Intern the attribute's values; nodes without it form one more group. */
        json_t *ids = json_object();
        b->sp[k].val = xmalloc((n ? n : 1) * sizeof(int));
        for (size_t i = 0; i < n; i++) {
            const char *v = json_string_value(json_object_get(nodes[i].attributes, s->field + 10));
            json_t *id = json_object_get(ids, v ? v : "");
            if (!id)
                json_object_set_new(ids, v ? v : "", id = json_integer((json_int_t)json_object_size(ids)));
            b->sp[k].val[i] = (int)json_integer_value(id);
        }
        b->sp[k].count = xcalloc(json_object_size(ids) + 1, sizeof(int));
        for (size_t i = 0; i < n; i++)
            b->sp[k].count[b->sp[k].val[i]] += b->svc_count[i];
        json_decref(ids);
    }
    return b;
}

void pl_batch_free(struct pl_batch *b)
{
    if (!b)
        return;
    for (size_t k = 0; k < MAX_STRATEGIES; k++) {
        free(b->sp[k].val);
        free(b->sp[k].count);
    }
    free(b->svc_count);
    free(b->cand);
    free(b->pos);
    free(b);
}

/* Strategy k's score of node i: lower is better. */
static double score(struct pl_batch *b, size_t k, size_t i)
{
    const struct pl_strategy *s = &b->req.strategies[k];
    const struct pl_node *nd = &b->nodes[i];
    switch (s->type) {
    case PL_SPREAD:
        return b->sp[k].val ? b->sp[k].count[b->sp[k].val[i]] : b->svc_count[i];
    case PL_BINPACK: /* the least room left after placing wins */
        return strcmp(s->field, "cpu") == 0 ? nd->cpu - nd->cpu_used - b->req.cpu : nd->mem - nd->mem_used - b->req.mem;
    case PL_RANDOM:
        return (double)(rnd(b) >> 11);
    }
    return 0;
}

/* True when node i beats node j (whose scores are in best[]); fills cur[] with i's. */
static bool better(struct pl_batch *b, size_t i, const double *best, double *cur, bool have_best)
{
    bool decided = false, win = !have_best;
    for (size_t k = 0; k < b->req.nstrategies; k++) {
        cur[k] = score(b, k, i);
        if (!decided && have_best && cur[k] != best[k]) {
            decided = true;
            win = cur[k] < best[k];
        }
    }
    return win;
}

static void why_not(struct pl_batch *b, char *why, size_t len)
{
    size_t active = 0, engines = 0, matching = 0, distinct = 0;
    int most_mem = -1, most_cpu = -1;
    for (size_t i = 0; i < b->n; i++) {
        const struct pl_node *nd = &b->nodes[i];
        if (!nd->active)
            continue;
        active++;
        if (b->req.containers && !nd->containers)
            continue;
        engines++;
        if (!matches(&b->req, nd))
            continue;
        matching++;
        if (b->req.distinct_instance && b->svc_count[i])
            continue;
        distinct++;
        if (nd->mem - nd->mem_used > most_mem)
            most_mem = nd->mem - nd->mem_used;
        if (nd->mem - nd->mem_used >= b->req.mem && nd->cpu - nd->cpu_used > most_cpu)
            most_cpu = nd->cpu - nd->cpu_used;
    }
    if (!active)
        snprintf(why, len, "no ACTIVE node (%zu known)", b->n);
    else if (!engines)
        snprintf(why, len, "no node runs containers (the task names images; %zu active node%s without a container engine)",
                 active, active == 1 ? "" : "s");
    else if (!matching)
        snprintf(why, len, "no node matches the constraint member_of(%s) (%zu active)",
                 b->req.member_of_text ? b->req.member_of_text : "...", active);
    else if (!distinct)
        snprintf(why, len, "distinct_instance: each of the %zu matching nodes already runs a task of this service",
                 matching);
    else if (most_mem < b->req.mem)
        snprintf(why, len, "insufficient memory: the task needs %d MiB, the most free on %zu node%s is %d MiB",
                 b->req.mem, distinct, distinct == 1 ? "" : "s", most_mem);
    else
        snprintf(why, len, "insufficient cpu: the task needs %d units, the most free on a node with the memory is %d",
                 b->req.cpu, most_cpu);
}

int pl_batch_place(struct pl_batch *b, char *why, size_t len)
{
    if (!b->ncand) {
        why_not(b, why, len);
        return -1;
    }
    double best[MAX_STRATEGIES], cur[MAX_STRATEGIES];
    size_t pick = SIZE_MAX;
    bool all = b->ncand <= PL_SAMPLE;
    size_t start = (size_t)(rnd(b) % b->ncand), tries = all ? b->ncand : PL_SAMPLE;
    for (size_t t = 0; t < tries; t++) {
        size_t i = b->cand[all ? (start + t) % b->ncand : (size_t)(rnd(b) % b->ncand)];
        if (better(b, i, best, cur, pick != SIZE_MAX)) {
            pick = i;
            memcpy(best, cur, sizeof best);
        }
    }
    struct pl_node *nd = &b->nodes[pick];
    nd->cpu_used += b->req.cpu;
    nd->mem_used += b->req.mem;
    b->svc_count[pick]++;
    for (size_t k = 0; k < b->req.nstrategies; k++)
        if (b->sp[k].val)
            b->sp[k].count[b->sp[k].val[pick]]++;
    if (!fits(b, pick) || b->req.distinct_instance) { /* no longer a candidate: swap it out */
        size_t at = b->pos[pick], last = b->cand[--b->ncand];
        b->cand[at] = last;
        b->pos[last] = at;
        b->pos[pick] = SIZE_MAX;
    }
    return (int)pick;
}
