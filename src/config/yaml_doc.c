/*
 * yaml_doc.c - builds the ydoc tree from libyaml's event stream.
 *
 * One recursive descent per node: a scalar event makes a leaf, a mapping or
 * sequence start event collects children until its end event. Marks come
 * from libyaml (0-based) and are stored 1-based. Nesting is capped at
 * YDOC_MAX_DEPTH so a hostile file cannot exhaust the stack. On any error the
 * partial tree is freed and the first problem is reported with libyaml's
 * problem mark (or the offending event's mark for our own refusals).
 *
 * The streamed sequence goes through the same build_collection() as any
 * other, only its children are handed to the callback and freed instead of
 * appended, so depth limits, refusals and error positions are the same
 * whether a list is streamed or not. A file descriptor is read through a
 * libyaml read handler; libyaml keeps only a small window of the input.
 */
#include "config/yaml_doc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define YDOC_MAX_DEPTH 64

struct builder {
    yaml_parser_t parser;
    const struct ydoc_input *in;
    const struct ydoc_stream *stream; /* NULL: keep every list */
    size_t nread;                     /* bytes read from in->fd so far */
    int read_errno;                   /* why the read handler failed, 0 when it did not */
    char *err;
    size_t errlen;
    int line, column;
};

static void fail_at(struct builder *b, const yaml_mark_t *m, const char *msg)
{
    snprintf(b->err, b->errlen, "%s", msg);
    b->line = (int)m->line + 1;
    b->column = (int)m->column + 1;
}

/* libyaml's own error: problem text, plus its context when it has one. */
static void fail_parser(struct builder *b)
{
    const yaml_parser_t *p = &b->parser;
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context)
        snprintf(b->err, b->errlen, "YAML syntax error: %s %s (started at %d:%d)", problem,
                 p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        snprintf(b->err, b->errlen, "YAML syntax error: %s", problem);
    b->line = (int)p->problem_mark.line + 1;
    b->column = (int)p->problem_mark.column + 1;
}

/* libyaml's read handler for in->fd: 1 with *got bytes (0 at the end of the
 * file), or 0 with the reason kept in read_errno (libyaml itself only
 * knows "input error"). */
static int read_fd(void *data, unsigned char *buf, size_t size, size_t *got)
{
    struct builder *b = data;
    ssize_t n;
    do
        n = read(b->in->fd, buf, size);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        b->read_errno = errno ? errno : EIO;
        return 0;
    }
    b->nread += (size_t)n;
    if (b->nread > b->in->max_bytes) {
        b->read_errno = EFBIG;
        return 0;
    }
    *got = (size_t)n;
    return 1;
}

void ydoc_free(struct ydoc_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            ydoc_free(n->keys[i]);
        ydoc_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n); /* a scalar's text lives in the same block */
}

/* A node; a scalar gets its text (len bytes) right behind it, one block. */
static struct ydoc_node *node_new(enum ydoc_kind kind, const yaml_mark_t *m, const char *text,
                                  size_t len)
{
    size_t extra = kind == YDOC_SCALAR ? len + 1 : 0;
    struct ydoc_node *n = malloc(sizeof(*n) + extra);
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->column = (int)m->column + 1;
    if (kind == YDOC_SCALAR) {
        n->value = (char *)(n + 1);
        if (len)
            memcpy(n->value, text, len);
        n->value[len] = '\0';
    }
    return n;
}

/* Appends a child (and for maps its key); arrays grow by doubling. */
static int node_append(struct ydoc_node *n, struct ydoc_node *key, struct ydoc_node *item,
                       size_t *cap)
{
    if (n->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        struct ydoc_node **ni = realloc(n->items, nc * sizeof(*ni));
        if (!ni)
            return -1;
        n->items = ni;
        if (n->kind == YDOC_MAP) {
            struct ydoc_node **nk = realloc(n->keys, nc * sizeof(*nk));
            if (!nk)
                return -1;
            n->keys = nk;
        }
        *cap = nc;
    }
    if (n->kind == YDOC_MAP)
        n->keys[n->n] = key;
    n->items[n->n] = item;
    n->n++;
    return 0;
}

static struct ydoc_node *build_node(struct builder *b, yaml_event_t *ev, int depth);

/* Reads the next event; -1 (with the error set) on a syntax error. */
static int next_event(struct builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev)) {
        fail_parser(b);
        return -1;
    }
    return 0;
}

/* true when the value starting with ev, under key of the mapping at depth,
 * is the sequence to stream. */
static bool streams(const struct builder *b, int depth, const struct ydoc_node *key,
                    const yaml_event_t *ev)
{
    return b->stream && depth == 0 && key && ev->type == YAML_SEQUENCE_START_EVENT &&
           strcmp(key->value, b->stream->key) == 0;
}

/* A mapping or sequence. With stream, a sequence whose items go to the
 * stream callback one by one and which is returned empty. */
static struct ydoc_node *build_collection(struct builder *b, yaml_event_t *start, int depth,
                                          bool stream)
{
    enum ydoc_kind kind = start->type == YAML_MAPPING_START_EVENT ? YDOC_MAP : YDOC_SEQ;
    yaml_event_type_t end = kind == YDOC_MAP ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
    size_t cap = 0, streamed = 0;
    struct ydoc_node *key = NULL;
    struct ydoc_node *n = node_new(kind, &start->start_mark, NULL, 0);
    if (!n) {
        fail_at(b, &start->start_mark, "out of memory");
        return NULL;
    }
    if (depth > YDOC_MAX_DEPTH) {
        fail_at(b, &start->start_mark, "YAML nested too deeply");
        goto fail;
    }
    for (;;) {
        yaml_event_t ev;
        if (next_event(b, &ev) < 0)
            goto fail;
        if (ev.type == end) {
            yaml_event_delete(&ev);
            break;
        }
        struct ydoc_node *child = streams(b, depth, key, &ev)
                                      ? build_collection(b, &ev, depth + 1, true)
                                      : build_node(b, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (!child)
            goto fail;
        if (kind == YDOC_MAP && !key) {
            if (child->kind != YDOC_SCALAR) {
                yaml_mark_t m = {.line = (size_t)child->line - 1,
                                 .column = (size_t)child->column - 1};
                ydoc_free(child);
                fail_at(b, &m, "mapping keys must be plain scalars");
                goto fail;
            }
            key = child;
            continue;
        }
        if (stream) {
            b->stream->item(b->stream->arg, child, streamed++);
            ydoc_free(child);
            continue;
        }
        if (node_append(n, key, child, &cap) < 0) {
            ydoc_free(child);
            fail_at(b, &start->start_mark, "out of memory");
            goto fail;
        }
        key = NULL;
    }
    return n;
fail:
    ydoc_free(key);
    ydoc_free(n);
    return NULL;
}

static struct ydoc_node *build_node(struct builder *b, yaml_event_t *ev, int depth)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        struct ydoc_node *n = node_new(YDOC_SCALAR, &ev->start_mark,
                                       (const char *)ev->data.scalar.value, ev->data.scalar.length);
        if (!n) {
            fail_at(b, &ev->start_mark, "out of memory");
            return NULL;
        }
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        return n;
    }
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        return build_collection(b, ev, depth, false);
    case YAML_ALIAS_EVENT:
        fail_at(b, &ev->start_mark, "YAML aliases are not supported in the config");
        return NULL;
    default:
        fail_at(b, &ev->start_mark, "unexpected YAML event");
        return NULL;
    }
}

int ydoc_parse_input(const struct ydoc_input *in, const struct ydoc_stream *stream,
                     struct ydoc_node **root, char *err, size_t errlen, int *line, int *column)
{
    struct builder b = {
        .in = in, .stream = stream, .err = err, .errlen = errlen, .line = 1, .column = 1};
    struct ydoc_node *doc = NULL;
    int ndocs = 0;
    yaml_event_t ev;

    *root = NULL;
    if (!yaml_parser_initialize(&b.parser)) {
        snprintf(err, errlen, "out of memory");
        *line = *column = 1;
        return YDOC_ESYNTAX;
    }
    if (in->use_fd)
        yaml_parser_set_input(&b.parser, read_fd, &b);
    else
        yaml_parser_set_input_string(&b.parser, (const unsigned char *)in->text, in->len);
    for (;;) {
        if (next_event(&b, &ev) < 0)
            goto fail;
        yaml_event_type_t t = ev.type;
        if (t == YAML_DOCUMENT_START_EVENT && ++ndocs > 1) {
            fail_at(&b, &ev.start_mark, "only one YAML document is allowed in the config");
            yaml_event_delete(&ev);
            goto fail;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_MAPPING_START_EVENT ||
            t == YAML_SEQUENCE_START_EVENT || t == YAML_ALIAS_EVENT) {
            doc = build_node(&b, &ev, 0);
            yaml_event_delete(&ev);
            if (!doc)
                goto fail;
            continue;
        }
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&b.parser);
    *root = doc;
    return 0;
fail:
    ydoc_free(doc);
    yaml_parser_delete(&b.parser);
    if (b.read_errno) {
        /* libyaml turned the failed read into "input error" at some mark;
         * the caller reports the real reason for the whole file instead. */
        snprintf(err, errlen, "%s", strerror(b.read_errno));
        *line = *column = 1;
        errno = b.read_errno;
        return YDOC_EREAD;
    }
    *line = b.line;
    *column = b.column;
    return YDOC_ESYNTAX;
}

int ydoc_parse(const char *text, size_t len, struct ydoc_node **root, char *err, size_t errlen,
               int *line, int *column)
{
    struct ydoc_input in = {.text = text, .len = len};
    return ydoc_parse_input(&in, NULL, root, err, errlen, line, column) < 0 ? -1 : 0;
}

const struct ydoc_node *ydoc_map_get(const struct ydoc_node *map, const char *key)
{
    if (!map || map->kind != YDOC_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->value, key) == 0)
            return map->items[i];
    return NULL;
}

bool ydoc_is_null(const struct ydoc_node *n)
{
    if (!n)
        return true;
    if (n->kind != YDOC_SCALAR || n->quoted)
        return false;
    return n->value[0] == '\0' || strcmp(n->value, "~") == 0 || strcasecmp(n->value, "null") == 0;
}

const char *ydoc_describe(const struct ydoc_node *n, char *buf, size_t len)
{
    if (!n)
        return "nothing";
    if (n->kind == YDOC_MAP)
        return "a map";
    if (n->kind == YDOC_SEQ)
        return "a list";
    if (strlen(n->value) > 40)
        snprintf(buf, len, "'%.37s...'", n->value);
    else
        snprintf(buf, len, "'%s'", n->value);
    return buf;
}
