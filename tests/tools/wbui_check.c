/*
 * wbui_check.c - the wbui validator (see wbui_check.h).
 *
 * The checks follow the conventions' meta description (types, the number
 * and boolean fields, title and enum objects, r/w/p errors) and the UI's
 * reading of them: the JSON meta and the legacy subtopics both apply, so a
 * legacy subtopic that disagrees with the JSON meta makes the UI's picture
 * depend on which arrived last, which is a problem.
 */
#include "wbui_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The default bounds of a range control (conventions, control meta). */
#define RANGE_DEFAULT_MIN 0.0
#define RANGE_DEFAULT_MAX 1e9

struct ctx {
    FILE *out;
    const char *dev, *ctl;
    int problems;
};

static void put_name(FILE *out, const char *s)
{
    for (; *s; s++)
        fputc(*s >= 0x20 && *s < 0x7f ? *s : '?', out);
}

static void problem(struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct ctx *x, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fputs("PROBLEM ", x->out);
    put_name(x->out, x->dev);
    if (x->ctl) {
        fputc('/', x->out);
        put_name(x->out, x->ctl);
    }
    fputs(": ", x->out);
    put_name(x->out, buf);
    fputc('\n', x->out);
    x->problems++;
}

/* A payload quoted in a message, cut to a readable length. */
static const char *q(const char *s, char *buf, size_t n)
{
    snprintf(buf, n, "%.60s%s", s, strlen(s) > 60 ? "..." : "");
    return buf;
}

static bool is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static bool is_object_of_strings(json_object *v)
{
    if (!json_object_is_type(v, json_type_object))
        return false;
    json_object_object_foreach(v, k, e)
    {
        (void)k;
        if (!json_object_is_type(e, json_type_string))
            return false;
    }
    return true;
}

static void check_errors(struct ctx *x, const char *err)
{
    char b[80];
    if (err && strspn(err, "rwp") != strlen(err))
        problem(x, "meta/error '%s' has letters other than r, w, p", q(err, b, sizeof(b)));
}

static bool meta_object(struct ctx *x, const struct wbui_meta *mt)
{
    if (!mt->raw)
        return false;
    if (!mt->json) {
        problem(x, "meta is not valid JSON");
        return false;
    }
    if (!json_object_is_type(mt->json, json_type_object)) {
        problem(x, "meta is not a JSON object");
        return false;
    }
    return true;
}

static void check_device_meta(struct ctx *x, const struct wbui_device *d)
{
    if (!meta_object(x, &d->meta))
        return;
    json_object *v;
    if (json_object_object_get_ex(d->meta.json, "driver", &v) &&
        !json_object_is_type(v, json_type_string))
        problem(x, "meta driver is not a string");
    if (json_object_object_get_ex(d->meta.json, "title", &v) && !is_object_of_strings(v))
        problem(x, "meta title is not an object of strings");
}

static void check_control_meta(struct ctx *x, const struct wbui_control *c, const char *type)
{
    char b[80];
    json_object *m = c->meta.json, *v;
    if (json_object_object_get_ex(m, "type", &v)) {
        if (!json_object_is_type(v, json_type_string))
            problem(x, "meta type is not a string");
        else if (!wbui_type_find(json_object_get_string(v)))
            problem(x, "unknown type '%s'", q(json_object_get_string(v), b, sizeof(b)));
    }
    static const char *const numbers[] = {"min", "max", "precision", "order"};
    for (size_t i = 0; i < 4; i++)
        if (json_object_object_get_ex(m, numbers[i], &v) && !is_number(v))
            problem(x, "meta %s is not a number", numbers[i]);
    static const char *const booleans[] = {"readonly", "hidden"};
    for (size_t i = 0; i < 2; i++)
        if (json_object_object_get_ex(m, booleans[i], &v) &&
            !json_object_is_type(v, json_type_boolean))
            problem(x, "meta %s is not a boolean", booleans[i]);
    if (json_object_object_get_ex(m, "units", &v) && !json_object_is_type(v, json_type_string))
        problem(x, "meta units is not a string");
    if (json_object_object_get_ex(m, "title", &v) && !is_object_of_strings(v))
        problem(x, "meta title is not an object of strings");
    if (json_object_object_get_ex(m, "enum", &v)) {
        if (!json_object_is_type(v, json_type_object)) {
            problem(x, "meta enum is not an object");
            return;
        }
        const struct wbui_type *t = wbui_type_find(type);
        json_object_object_foreach(v, key, title)
        {
            double num;
            if (!is_object_of_strings(title))
                problem(x, "meta enum title of '%s' is not an object of strings",
                        q(key, b, sizeof(b)));
            if (t && t->kind == WBUI_K_NUMBER && !wbui_parse_number(key, &num))
                problem(x, "meta enum key '%s' is not a number", q(key, b, sizeof(b)));
        }
    }
}

static bool same_number(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fmax(1.0, fmax(fabs(a), fabs(b)));
}

static void check_legacy(struct ctx *x, const struct wbui_control *c)
{
    char b[80], b2[80];
    json_object *m =
        c->meta.json && json_object_is_type(c->meta.json, json_type_object) ? c->meta.json : NULL;
    json_object *v;
    const char *lt = c->legacy[WBUI_L_TYPE];
    if (lt) {
        if (!wbui_type_find(lt))
            problem(x, "unknown type '%s' in meta/type", q(lt, b, sizeof(b)));
        if (m && json_object_object_get_ex(m, "type", &v) &&
            json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), lt) != 0)
            problem(x, "meta/type '%s' disagrees with meta type '%s'", q(lt, b, sizeof(b)),
                    q(json_object_get_string(v), b2, sizeof(b2)));
    }
    const char *lr = c->legacy[WBUI_L_READONLY];
    if (lr) {
        if (strcmp(lr, "0") != 0 && strcmp(lr, "1") != 0)
            problem(x, "meta/readonly '%s' is not 0 or 1", q(lr, b, sizeof(b)));
        else if (m && json_object_object_get_ex(m, "readonly", &v) &&
                 json_object_is_type(v, json_type_boolean) &&
                 json_object_get_boolean(v) != (lr[0] == '1'))
            problem(x, "meta/readonly '%s' disagrees with meta readonly %s", lr,
                    json_object_get_boolean(v) ? "true" : "false");
    }
    static const struct {
        enum wbui_legacy l;
        const char *key;
    } nums[] = {{WBUI_L_ORDER, "order"},
                {WBUI_L_MIN, "min"},
                {WBUI_L_MAX, "max"},
                {WBUI_L_PRECISION, "precision"}};
    for (size_t i = 0; i < 4; i++) {
        const char *l = c->legacy[nums[i].l];
        double lv;
        if (!l)
            continue;
        if (!wbui_parse_number(l, &lv))
            problem(x, "meta/%s '%s' is not a number", nums[i].key, q(l, b, sizeof(b)));
        else if (m && json_object_object_get_ex(m, nums[i].key, &v) && is_number(v) &&
                 !same_number(lv, json_object_get_double(v)))
            problem(x, "meta/%s '%s' disagrees with meta %s %g", nums[i].key, q(l, b, sizeof(b)),
                    nums[i].key, json_object_get_double(v));
    }
    const char *lu = c->legacy[WBUI_L_UNITS];
    if (lu && m && json_object_object_get_ex(m, "units", &v) &&
        json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), lu) != 0)
        problem(x, "meta/units '%s' disagrees with meta units '%s'", q(lu, b, sizeof(b)),
                q(json_object_get_string(v), b2, sizeof(b2)));
}

/* Whether VALUE matches an enum key: as numbers for a number control
 * (keys may be decimal or hex), as strings otherwise. */
static bool in_enum(json_object *e, const char *value, bool numeric)
{
    double want = 0;
    if (numeric && !wbui_parse_number(value, &want))
        return false;
    json_object_object_foreach(e, key, title)
    {
        (void)title;
        double k;
        if (numeric ? wbui_parse_number(key, &k) && same_number(k, want) : strcmp(key, value) == 0)
            return true;
    }
    return false;
}

const char *wbui_check_number_input(const struct wbui_control *c, const char *value, double *num)
{
    static char why[200];
    char b[80];
    if (!wbui_parse_number(value, num)) {
        snprintf(why, sizeof(why), "value '%s' is not a number", q(value, b, sizeof(b)));
        return why;
    }
    bool is_range = wbui_control_type(c) && strcmp(wbui_control_type(c), "range") == 0;
    double lo = RANGE_DEFAULT_MIN, hi = RANGE_DEFAULT_MAX;
    bool has_lo = wbui_control_number(c, "min", WBUI_L_MIN, &lo) || is_range;
    bool has_hi = wbui_control_number(c, "max", WBUI_L_MAX, &hi) || is_range;
    if ((has_lo && *num < lo) || (has_hi && *num > hi)) {
        char l[32] = "", h[32] = "";
        if (has_lo)
            snprintf(l, sizeof(l), "%g", lo);
        if (has_hi)
            snprintf(h, sizeof(h), "%g", hi);
        snprintf(why, sizeof(why), "value '%s' is out of range %s..%s", q(value, b, sizeof(b)), l,
                 h);
        return why;
    }
    json_object *e = wbui_control_enum(c);
    if (e && !in_enum(e, value, true)) {
        snprintf(why, sizeof(why), "value '%s' is not among the enum keys", q(value, b, sizeof(b)));
        return why;
    }
    return NULL;
}

const char *wbui_check_text_input(const struct wbui_control *c, const char *value)
{
    static char why[200];
    char b[80];
    json_object *e = wbui_control_enum(c);
    if (e && !in_enum(e, value, false)) {
        snprintf(why, sizeof(why), "value '%s' is not among the enum keys", q(value, b, sizeof(b)));
        return why;
    }
    return NULL;
}

const char *wbui_check_rgb(const char *value)
{
    static char why[200];
    char b[80];
    const char *p = value;
    for (int i = 0; i < 3; i++) {
        size_t n = strspn(p, "0123456789");
        if (n == 0 || n > 3 || atoi(p) > 255 || p[n] != (i < 2 ? ';' : '\0')) {
            snprintf(why, sizeof(why), "rgb value '%s' is not R;G;B (0..255 each)",
                     q(value, b, sizeof(b)));
            return why;
        }
        p += n + 1;
    }
    return NULL;
}

static void check_value(struct ctx *x, const struct wbui_control *c, const struct wbui_type *t)
{
    char b[80];
    const char *v = c->value, *why = NULL;
    double num;
    switch (t->kind) {
    case WBUI_K_BOOL:
        if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
            problem(x, "%s value '%s' is not 0 or 1", t->name, q(v, b, sizeof(b)));
        break;
    case WBUI_K_NUMBER:
        why = wbui_check_number_input(c, v, &num);
        break;
    case WBUI_K_TEXT:
        why = wbui_check_text_input(c, v);
        break;
    case WBUI_K_RGB:
        why = wbui_check_rgb(v);
        break;
    case WBUI_K_PUSHBUTTON:
        break;
    }
    if (why)
        problem(x, "%s", why);
}

static void check_control(struct ctx *x, const struct wbui_control *c)
{
    char b[80];
    const char *type = wbui_control_type(c);
    if (meta_object(x, &c->meta))
        check_control_meta(x, c, type);
    check_legacy(x, c);
    double lo, hi;
    if (wbui_control_number(c, "min", WBUI_L_MIN, &lo) &&
        wbui_control_number(c, "max", WBUI_L_MAX, &hi) && lo > hi)
        problem(x, "min %g is greater than max %g", lo, hi);
    const struct wbui_type *t = wbui_type_find(type);
    if (c->value && !type)
        problem(x, "value without a type");
    if (type && !c->value && !(t && t->kind == WBUI_K_PUSHBUTTON))
        problem(x, "type '%s' without a value", q(type, b, sizeof(b)));
    if (c->value && t)
        check_value(x, c, t);
    check_errors(x, c->error);
}

int wbui_check_device(const struct wbui_device *d, FILE *out)
{
    struct ctx x = {out, d->name, NULL, 0};
    check_device_meta(&x, d);
    check_errors(&x, d->error);
    size_t n;
    struct wbui_control **cv = wbui_device_controls(d, &n);
    for (size_t i = 0; i < n; i++) {
        x.ctl = cv[i]->name;
        check_control(&x, cv[i]);
    }
    free(cv);
    return x.problems;
}
