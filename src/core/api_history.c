/*
 * api_history.c - GET /state-history/{id}: its parameters, the store query
 * and the down-sampling of a time range (api_history.h).
 *
 * Without max_points the answer is the store's rows, as the contract has
 * always had them ([{"ts","state"}], newest first unless order=asc), only
 * restricted to [from, to] and to the fields asked. With max_points the
 * range [from, to] (from defaulting to the first row kept, to to now) is
 * cut into max_points spans of equal length and each span that has rows
 * becomes one bucket: numeric fields give their mean as the state and
 * min/max/mean/n in "stats", other fields their last value; "ts" is the
 * time of the bucket's last row and "n" its number of rows. Buckets are
 * computed here from the rows, never by a backend: every backend answers
 * the same plain range query, and the shape stays one place's business.
 */
#include "core/api_history.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/api_rows.h"
#include "core/core.h"
#include "wbmb/util.h"

#define MAX_FIELDS 64

/* ---- times ---------------------------------------------------------------- */

/* Exactly n decimal digits at *p, advancing it. */
static bool num_at(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9')
            return false;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool lit(const char **p, char a, char b)
{
    if (**p != a && **p != b)
        return false;
    (*p)++;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : md[m - 1];
}

/* Epoch ms of years 0001..9999 stay within +-2.6e14. */
#define MS_BOUND 253402300800000LL

static int epoch_ms(const char *s, int64_t *ms)
{
    const char *p = s + (*s == '-');
    if (!*p || strlen(p) > 15)
        return -1;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno || v > MS_BOUND || v < -MS_BOUND)
        return -1;
    *ms = v;
    return 0;
}

int api_time_parse(const char *s, int64_t *ms)
{
    if (!s || !*s)
        return -1;
    if (epoch_ms(s, ms) == 0)
        return 0;
    const char *p = s;
    int y, mo, d, h, mi, sec, oh = 0, om = 0, frac = 0, sign = 0;
    if (!num_at(&p, 4, &y) || !lit(&p, '-', '-') || !num_at(&p, 2, &mo) || !lit(&p, '-', '-') ||
        !num_at(&p, 2, &d) || !lit(&p, 'T', 't') || !num_at(&p, 2, &h) || !lit(&p, ':', ':') ||
        !num_at(&p, 2, &mi) || !lit(&p, ':', ':') || !num_at(&p, 2, &sec))
        return -1;
    if (*p == '.' || *p == ',') {
        p++;
        int nd = 0;
        for (; *p >= '0' && *p <= '9'; p++, nd++)
            if (nd < 3)
                frac = frac * 10 + (*p - '0');
        if (nd == 0 || nd > 9)
            return -1;
        for (; nd < 3; nd++)
            frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == ' ' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (!num_at(&p, 2, &oh) || (*p == ':' && !lit(&p, ':', ':')) || !num_at(&p, 2, &om))
            return -1;
    } else {
        return -1; /* a time without a zone is ambiguous: local or UTC? */
    }
    if (*p || y < 1 || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 ||
        sec > 59 || oh > 23 || om > 59)
        return -1;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *ms = t * 1000 + frac;
    return 0;
}

/* ---- buckets -------------------------------------------------------------- */

struct acc {
    char *name;
    json_object *last; /* a reference; NULL for a JSON null */
    bool numeric;
    double min, max, sum;
    int64_t n;
};

struct bucket {
    struct acc *f;
    size_t nf, cap;
    int64_t rows;
    const char *ts; /* the last row's, borrowed from the row set */
};

static bool wanted(const char *name, const char *const *fields)
{
    if (!fields)
        return true;
    for (size_t i = 0; fields[i]; i++)
        if (strcmp(fields[i], name) == 0)
            return true;
    return false;
}

static struct acc *acc_of(struct bucket *b, const char *name)
{
    for (size_t i = 0; i < b->nf; i++)
        if (strcmp(b->f[i].name, name) == 0)
            return &b->f[i];
    if (b->nf == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 8;
        struct acc *nf = realloc(b->f, ncap * sizeof(*nf));
        if (!nf)
            return NULL;
        b->f = nf;
        b->cap = ncap;
    }
    char *own = strdup(name);
    if (!own)
        return NULL;
    struct acc *a = &b->f[b->nf++];
    *a = (struct acc){.name = own, .numeric = true};
    return a;
}

static void acc_add(struct acc *a, json_object *v)
{
    json_type t = json_object_get_type(v);
    if (a->numeric && (t == json_type_int || t == json_type_double)) {
        double x = json_object_get_double(v);
        if (a->n == 0 || x < a->min)
            a->min = x;
        if (a->n == 0 || x > a->max)
            a->max = x;
        a->sum += x;
        a->n++;
    } else {
        a->numeric = false;
    }
    json_object_put(a->last);
    a->last = json_object_get(v);
}

/* An interval row's own min/max/mean/n of a field (its "stats"): folded in
 * as the n samples it stands for, so a bucket over interval rows keeps the
 * true extremes, not those of the means. False when s is not such an
 * object (then the value counts as one sample). */
static bool acc_fold(struct acc *a, json_object *s, json_object *v)
{
    json_object *mn, *mx, *me, *n;
    if (!a->numeric || !json_object_is_type(s, json_type_object) ||
        !json_object_object_get_ex(s, "min", &mn) || !json_object_object_get_ex(s, "max", &mx) ||
        !json_object_object_get_ex(s, "mean", &me) || !json_object_object_get_ex(s, "n", &n))
        return false;
    json_object *nums[] = {mn, mx, me, n};
    for (int i = 0; i < 4; i++) {
        json_type t = json_object_get_type(nums[i]);
        if (t != json_type_int && t != json_type_double)
            return false;
    }
    int64_t cnt = json_object_get_int64(n);
    if (cnt < 1)
        return false;
    double lo = json_object_get_double(mn), hi = json_object_get_double(mx);
    if (a->n == 0 || lo < a->min)
        a->min = lo;
    if (a->n == 0 || hi > a->max)
        a->max = hi;
    a->sum += json_object_get_double(me) * (double)cnt;
    a->n += cnt;
    json_object_put(a->last);
    a->last = json_object_get(v);
    return true;
}

/* A number as JSON: an integer when it is one (min and max of integer
 * fields print as they came), else a double. */
static json_object *num_json(double x)
{
    if (x > -9e15 && x < 9e15 && (double)(int64_t)x == x)
        return json_object_new_int64((int64_t)x);
    return json_object_new_double(x);
}

static json_object *bucket_json(const struct bucket *b)
{
    json_object *o = json_object_new_object(), *state = json_object_new_object(),
                *stats = json_object_new_object();
    json_object_object_add(o, "ts", json_object_new_string(b->ts ? b->ts : ""));
    for (size_t i = 0; i < b->nf; i++) {
        const struct acc *a = &b->f[i];
        if (a->numeric && a->n > 0) {
            double mean = a->sum / (double)a->n;
            json_object *st = json_object_new_object();
            json_object_object_add(st, "min", num_json(a->min));
            json_object_object_add(st, "max", num_json(a->max));
            json_object_object_add(st, "mean", num_json(mean));
            json_object_object_add(st, "n", json_object_new_int64(a->n));
            json_object_object_add(stats, a->name, st);
            json_object_object_add(state, a->name, num_json(mean));
        } else {
            json_object_object_add(state, a->name, json_object_get(a->last));
        }
    }
    json_object_object_add(o, "state", state);
    json_object_object_add(o, "stats", stats);
    json_object_object_add(o, "n", json_object_new_int64(b->rows));
    return o;
}

static void bucket_clear(struct bucket *b)
{
    for (size_t i = 0; i < b->nf; i++) {
        json_object_put(b->f[i].last);
        free(b->f[i].name);
    }
    b->nf = 0;
    b->rows = 0;
    b->ts = NULL;
}

json_object *api_history_buckets(const struct store_rows *rows, int64_t from_ms, int64_t to_ms,
                                 int n, bool ascending, const char *const *fields)
{
    json_object *arr = json_object_new_array();
    json_object **out = malloc(((size_t)n + 1) * sizeof(*out));
    size_t nout = 0;
    if (!out || n < 1 || to_ms < from_ms)
        goto done;
    /* Spans of equal length covering [from, to]; ceil so n of them do. */
    int64_t span = (to_ms - from_ms) / n + 1;
    struct bucket b = {0};
    int64_t cur = -1;
    /* One tokener for every row: json_tokener_parse() makes one per call. */
    json_tokener *tok = json_tokener_new();
    for (size_t i = 0; i < rows->n; i++) {
        int64_t ms;
        if (api_time_parse(rows->history[i].ts, &ms) || ms < from_ms || ms > to_ms)
            continue;
        int64_t idx = (ms - from_ms) / span;
        if (idx < cur)
            idx = cur; /* a clock that went back: the row joins the open bucket */
        if (idx != cur && b.rows > 0 && nout < (size_t)n) {
            out[nout++] = bucket_json(&b);
            bucket_clear(&b);
        }
        cur = idx;
        json_object *st = NULL;
        if (tok) {
            json_tokener_reset(tok);
            st = json_tokener_parse_ex(tok, rows->history[i].state, -1);
        }
        json_object *sj = NULL;
        if (tok && rows->history[i].stats) {
            json_tokener_reset(tok);
            sj = json_tokener_parse_ex(tok, rows->history[i].stats, -1);
        }
        b.rows++;
        b.ts = rows->history[i].ts;
        if (json_object_is_type(st, json_type_object)) {
            json_object_object_foreach(st, k, v)
            {
                struct acc *a = wanted(k, fields) ? acc_of(&b, k) : NULL;
                json_object *fs = NULL;
                if (a && !(json_object_object_get_ex(sj, k, &fs) && acc_fold(a, fs, v)))
                    acc_add(a, v);
            }
        }
        json_object_put(st);
        json_object_put(sj);
    }
    if (b.rows > 0 && nout < (size_t)n)
        out[nout++] = bucket_json(&b);
    bucket_clear(&b);
    free(b.f);
    if (tok)
        json_tokener_free(tok);
done:
    for (size_t i = 0; i < nout; i++)
        json_object_array_add(arr, out[ascending ? i : nout - 1 - i]);
    free(out);
    return arr;
}

/* ---- parameters ----------------------------------------------------------- */

/* The state of every row of arr restricted to fields. */
static void restrict_fields(json_object *arr, const char *const *fields)
{
    for (size_t i = 0, n = json_object_array_length(arr); i < n; i++) {
        json_object *row = json_object_array_get_idx(arr, i), *st, *keep;
        if (!json_object_object_get_ex(row, "state", &st) ||
            !json_object_is_type(st, json_type_object))
            continue;
        keep = json_object_new_object();
        json_object_object_foreach(st, k, v)
        {
            if (wanted(k, fields))
                json_object_object_add(keep, k, json_object_get(v));
        }
        json_object_object_add(row, "state", keep);
    }
}

/* Splits "a,b" into fields[] (pointers into buf); -1 for an empty name or
 * too many. */
static int split_fields(char *buf, const char *fields[MAX_FIELDS + 1])
{
    size_t n = 0;
    for (char *p = buf;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        if (!*p || n == MAX_FIELDS)
            return -1;
        fields[n++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    fields[n] = NULL;
    return 0;
}

static int bad(json_object **body, const char *msg)
{
    *body = api_error("%s", msg);
    return 400;
}

static bool given(const char *v)
{
    return v && *v;
}

int api_history_answer(struct state_store *s, const char *device_id,
                       const struct http_history_args *a, json_object **body)
{
    struct store_history_query q = STORE_HISTORY_QUERY(device_id);
    q.limit = a->limit;
    if (given(a->from) && api_time_parse(a->from, &q.from_ms))
        return bad(body, "from must be an ISO-8601 time with a zone (2026-12-03T06:00:00Z) or "
                         "epoch milliseconds");
    if (given(a->to) && api_time_parse(a->to, &q.to_ms))
        return bad(body, "to must be an ISO-8601 time with a zone (2026-12-03T06:00:00Z) or "
                         "epoch milliseconds");
    if (given(a->order) && strcmp(a->order, "asc") != 0 && strcmp(a->order, "desc") != 0)
        return bad(body, "order must be asc or desc");
    bool asc = given(a->order) && strcmp(a->order, "asc") == 0;
    long points = 0;
    if (given(a->max_points)) {
        char *end;
        errno = 0;
        points = strtol(a->max_points, &end, 10);
        if (*end || errno || a->max_points[0] < '0' || a->max_points[0] > '9' || points < 1 ||
            points > API_MAX_POINTS)
            return bad(body, "max_points must be an integer 1..10000");
        if (!given(a->to))
            q.to_ms = util_wall_ms();
    }
    if (q.from_ms > q.to_ms)
        return bad(body, given(a->to) ? "from must not be after to" : "from must not be after now");
    char fbuf[1024];
    const char *fv[MAX_FIELDS + 1], *const *fields = NULL;
    if (a->fields) {
        if (strlen(a->fields) >= sizeof(fbuf))
            return bad(body, "fields is too long");
        strcpy(fbuf, a->fields);
        if (split_fields(fbuf, fv))
            return bad(body, "fields must be a comma-separated list of at most 64 field names");
        fields = fv;
    }
    /* Buckets need every row of the range, oldest first. */
    q.ascending = points ? true : asc;
    if (points)
        q.limit = 0;
    struct store_rows rows;
    wb_status st = store_history_query(s, &q, &rows);
    if (st != WB_OK) {
        store_rows_free(&rows);
        *body = api_error("the store could not answer: %s", wb_strerror(st));
        return 503;
    }
    if (points) {
        int64_t from = q.from_ms;
        if (from == INT64_MIN && rows.n > 0 && api_time_parse(rows.history[0].ts, &from))
            from = q.to_ms;
        *body = rows.n ? api_history_buckets(&rows, from, q.to_ms, (int)points, asc, fields)
                       : json_object_new_array();
    } else {
        *body = api_rows_json(&rows);
        if (fields)
            restrict_fields(*body, fields);
    }
    store_rows_free(&rows);
    return 200;
}
